"""Database-driven media archiving (the seed's ``post_media`` archive).

``table`` reads and updates the media table through a column map; ``locate``
finds each row's local file and its true extension; ``archiver`` streams rows
through the upload engine and writes ``archive_url`` back in batches;
``report`` gives statistics and verification; ``demo`` builds a sample.

Runs on the engine (``transfer``) and ``restore``; never imports ``cli``.
"""

DEFAULT_TEMPLATE = "cache/{created_at:%Y}/{created_at:%m}/{md5}.{ext}"
