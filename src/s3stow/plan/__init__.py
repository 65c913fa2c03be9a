"""The plan stage: local sources turned into decided uploads, before any byte is sent.

``discover`` walks the sources (``ahead`` runs it in a thread ahead of the uploads),
``select`` and ``foldertypes`` choose files, ``keys`` and ``templates`` make and check
keys, ``planner`` puts them together for a run, ``collisions`` keeps two files off one
key, ``ownfiles`` leaves out s3stow's own working files, ``compare`` decides what is
already done (ledger, then one listing). What ``retry`` re-attempts is planned here
too: ``failures`` reads failures files and ``aws s3`` error logs, ``retries`` groups
the ledger's failures by the settings of their run. Imports the base modules, ``store``
values and the ledger; never ``transfer``, ``report``, the tools or ``cli``.
"""
