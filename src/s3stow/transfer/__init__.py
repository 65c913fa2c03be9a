"""The transfer layer: moving planned files into S3, verified.

``engine`` is the library API (``Uploader``) over ``pipeline``, which runs one run
through the stages (``UploadPipeline``, its base class); ``worker`` takes one decided
file to its outcome; ``single`` and ``multipart`` upload one file (``multipartsend``:
a part's request and the Complete, shared with split uploads); ``context`` holds what
a run's transfers share; ``limits`` bounds concurrent requests (AIMD on throttling)
and bytes in memory; ``retry`` re-attempts transient failures; ``parts`` chooses part
sizes.

Imports the base modules, ``store``, ``ledger``, ``plan`` and the observer hooks of
``report``; never the tools or ``cli``.
"""
