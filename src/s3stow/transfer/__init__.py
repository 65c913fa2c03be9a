"""The transfer layer: moving one planned file into S3, verified.

``limits`` bounds concurrent requests (AIMD on throttling) and bytes in memory;
``retry`` re-attempts transient failures; ``parts`` chooses part sizes;
``single`` and ``multipart`` upload one file; ``engine`` runs the pipeline.
"""
