"""s3stow: upload and archive local files to S3, verified and resumable."""

__version__ = "0.1.0"
