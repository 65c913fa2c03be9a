"""The library API: Uploader.from_env, upload_file, check_bucket_access."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3stow.errors import BucketMissingError, ConfigError
from s3stow.ledger import open_ledger
from s3stow.models import Status
from s3stow.transfer.engine import Uploader


def test_from_env_with_seed_variables(s3_server, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = {
        "BUCKET_NAME": bucket,
        "PREFIX": "xml-events/",
        "MAX_RETRIES": "4",
        "RETRY_BASE_DELAY": "0.5",
        "S3STOW_ENDPOINT_URL": s3_server.endpoint_url,
    }
    uploader = Uploader.from_env(env)
    assert uploader.settings.file_retries == 4
    assert uploader.settings.retry_base_delay == 0.5
    uploader.check_bucket_access()
    path = tmp_path / "20250729_161500.xml"
    path.write_text("<event/>")
    result = uploader.upload_file(path)
    assert result.status == Status.DONE
    assert result.key == "xml-events/20250729_161500.xml"
    head = s3.head_object(Bucket=bucket, Key=result.key)
    assert head["ContentType"] == "application/xml"


def test_from_env_requires_bucket() -> None:
    with pytest.raises(ConfigError, match="BUCKET_NAME"):
        Uploader.from_env({})


def test_check_bucket_access_missing_bucket(s3_server) -> None:  # type: ignore[no-untyped-def]
    uploader = Uploader.from_env(
        {"BUCKET_NAME": "missing-bucket-xyz", "S3STOW_ENDPOINT_URL": s3_server.endpoint_url}
    )
    with pytest.raises(BucketMissingError):
        uploader.check_bucket_access()


def test_upload_file_records_in_ledger(s3_server, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ledger = open_ledger(str(tmp_path / "l.db"))
    uploader = Uploader.from_env(
        {"BUCKET_NAME": bucket, "S3STOW_ENDPOINT_URL": s3_server.endpoint_url}, ledger=ledger
    )
    path = tmp_path / "a.json"
    path.write_text("{}")
    result = uploader.upload_file(path, key="custom/a.json")
    assert result.url == f"s3://{bucket}/custom/a.json"
    assert ledger.lookup(bucket, ["custom/a.json"])["custom/a.json"].status == Status.DONE
    ledger.close()


def test_from_env_use_date_folders(s3_server, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = {
        "BUCKET_NAME": bucket,
        "USE_DATE_FOLDERS": "true",
        "S3STOW_ENDPOINT_URL": s3_server.endpoint_url,
    }
    uploader = Uploader.from_env(env)
    path = tmp_path / "20250729_161500.xml"
    path.write_text("<event/>")
    result = uploader.upload_file(path)
    assert result.status == Status.DONE
    assert result.key == "xml-events/2025/07/29/20250729_161500.xml"
