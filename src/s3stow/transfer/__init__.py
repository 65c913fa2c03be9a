"""The transfer layer: moving planned files into S3, verified.

``engine`` runs the pipeline and is the library API (``Uploader``); ``worker`` takes
one decided file to its outcome; ``single`` and ``multipart`` upload one file
(``multipartsend``: a part's request and the Complete, shared with split uploads);
``context`` holds what a run's transfers share; ``limits`` bounds concurrent
requests (AIMD on throttling) and bytes in memory; ``retry`` re-attempts transient
failures; ``parts`` chooses part sizes.

Imports the base modules, ``store``, ``ledger``, ``plan`` and the observer hooks of
``report``; never the tools or ``cli``.
"""
