"""``s3stow bucket setup|check`` and ``s3stow doctor`` against the moto server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from s3stow.config import load_settings
from s3stow.devserver.moto import LocalS3Server
from s3stow.plan.keys import parse_target
from s3stow.store.client import make_client
from s3stow.tools.doctor import _bucket
from tests.conftest import Cli, make_tree


def _js(result: Any) -> Any:
    return json.loads(result.stdout)


@pytest.mark.moto_only("GLACIER lifecycle transitions: SeaweedFS answers NotImplemented")
def test_setup_creates_configures_and_is_idempotent(cli, s3) -> None:  # type: ignore[no-untyped-def]
    name = f"setup-{time.time_ns()}"
    first = cli(
        "--json",
        "bucket",
        "setup",
        name,
        "--versioning",
        "--glacier-after",
        "90",
        "--encryption",
        "AES256",
    )
    assert first.code == 0, first.output
    data = _js(first)
    assert data["existed"] is False
    assert data["changed"] is True
    assert data["write_test"].startswith("ok")
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]}
    assert rules["s3stow-archive"]["Transitions"][0] == {"Days": 90, "StorageClass": "GLACIER"}
    assert rules["s3stow-abort-incomplete"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 7
    }
    assert all(s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"].values())
    assert "Contents" not in s3.list_objects_v2(Bucket=name)  # the probe was deleted
    second = cli(
        "bucket", "setup", name, "--versioning", "--glacier-after", "90", "--encryption", "AES256"
    )
    assert second.code == 0
    assert "nothing to change" in second.stdout


@pytest.mark.engines
def test_check_only_detects_drift_and_changes_nothing(cli, s3) -> None:  # type: ignore[no-untyped-def]
    name = f"drift-{time.time_ns()}"
    assert cli("bucket", "setup", name, "--versioning").code == 0
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Suspended"})
    result = cli("bucket", "setup", name, "--versioning", "--check-only")
    assert result.code == 1
    assert "differ" in result.stdout
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Suspended"


@pytest.mark.moto_only("GLACIER lifecycle transitions: SeaweedFS answers NotImplemented")
def test_foreign_lifecycle_rules_are_kept(cli, s3, bucket) -> None:  # type: ignore[no-untyped-def]
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "keep-me",
                    "Status": "Enabled",
                    "Filter": {"Prefix": "logs/"},
                    "Expiration": {"Days": 30},
                }
            ]
        },
    )
    result = cli("bucket", "setup", bucket, "--glacier-after", "90", "--prefix", "cache")
    assert result.code == 0, result.output
    rules = {r["ID"] for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules == {"keep-me", "s3stow-archive", "s3stow-abort-incomplete"}


def test_region_constraint(cli, s3) -> None:  # type: ignore[no-untyped-def]
    name = f"eu-{time.time_ns()}"
    assert cli("bucket", "setup", name, "--region", "eu-west-1").code == 0
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"


@pytest.mark.engines
def test_bucket_check_counts_and_aborts_old_uploads(cli, s3, bucket) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="p/a", Body=b"12345")
    s3.create_multipart_upload(Bucket=bucket, Key="p/big")
    data = _js(cli("--json", "bucket", "check", bucket, "--prefix", "p"))
    assert (data["objects"], data["bytes"]) == (1, 5)
    assert [u["key"] for u in data["incomplete_uploads"]] == ["p/big"]
    cleaned = _js(cli("--json", "bucket", "check", bucket, "--abort-older-than", "0"))
    assert cleaned["aborted"] == ["p/big"]
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    # a missing bucket is exit 3 (README, exit codes), as in upload, restore and verify
    missing = cli("bucket", "check", "no-such-bucket-x")
    assert missing.code == 3, missing.output
    assert "bucket no-such-bucket-x does not exist" in missing.stderr


@pytest.mark.engines
def test_doctor_with_good_credentials(cli, bucket) -> None:  # type: ignore[no-untyped-def]
    result = cli("--json", "doctor", f"s3://{bucket}/jobs")
    assert result.code == 0, result.output
    checks = {c["name"]: c for c in _js(result)["checks"]}
    assert checks["credentials"]["status"] == "OK"
    assert "testing" not in json.dumps(checks["credentials"])  # key masked, no secret
    assert checks["s3:PutObject/GetObject/DeleteObject"]["status"] == "OK"
    assert checks["bucket"]["status"] == "OK"


def test_doctor_missing_bucket_fails(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("doctor", "s3://missing-bucket-abc/x")
    assert result.code == 3
    assert "s3stow bucket setup" in result.stdout


def test_clock_skew_is_reported(s3_server, bucket) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(env={}, flags={"endpoint_url": s3_server.endpoint_url})
    client = make_client(settings)
    skewed = _bucket(client, parse_target(f"s3://{bucket}"), lambda: time.time() + 3600)
    assert skewed.status == "WARN"
    assert "clock" in skewed.detail
    fine = _bucket(client, parse_target(f"s3://{bucket}"), time.time)
    assert fine.status == "OK"


@pytest.fixture(scope="module")
def auth_users() -> Iterator[tuple[LocalS3Server, dict[str, dict[str, str]]]]:
    server = LocalS3Server(env={"INITIAL_NO_AUTH_ACTION_COUNT": "7"})
    server.start()
    iam = boto3.client(
        "iam",
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    users = {}
    policies = {
        "full": ["s3:*"],
        "readonly": ["s3:ListBucket", "s3:GetObject", "s3:ListAllMyBuckets", "s3:HeadBucket"],
    }
    for name, actions in policies.items():
        iam.create_user(UserName=name)
        iam.put_user_policy(
            UserName=name,
            PolicyName="p",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName=name)["AccessKey"]
        users[name] = {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }
    boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=users["full"]["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=users["full"]["AWS_SECRET_ACCESS_KEY"],
    ).create_bucket(Bucket="guarded")
    yield server, users
    server.stop()


@pytest.mark.moto_only(
    "needs IAM users with chosen permissions: SeaweedFS mini has one admin identity"
)
def test_missing_put_permission_fails_fast(auth_users: Any, tmp_path: Path) -> None:
    server, users = auth_users
    cli = Cli(server.endpoint_url, tmp_path)
    doctor = cli("--json", "doctor", "s3://guarded/p", env=users["readonly"])
    assert doctor.code == 3
    failed = [c for c in _js(doctor)["checks"] if c["status"] == "FAIL"]
    assert failed[0]["name"] == "s3:PutObject/GetObject/DeleteObject"
    assert "s3:PutObject" in failed[0]["detail"]
    make_tree(tmp_path / "src", {f"f{i}.txt": 10 for i in range(10)})
    upload = cli("upload", "src", "s3://guarded/p", "--ledger", "l.db", env=users["readonly"])
    assert upload.code == 3
    assert "AccessDenied" in upload.stderr
    assert "s3:PutObject" in upload.stderr
    ok = cli("--json", "doctor", "s3://guarded/p", env=users["full"])
    assert ok.code == 0, ok.output


@pytest.mark.moto_only(
    "needs IAM users with chosen permissions: SeaweedFS mini has one admin identity"
)
def test_wrong_secret_fails_fast(auth_users: Any, tmp_path: Path) -> None:
    server, users = auth_users
    wrong = dict(users["full"], AWS_SECRET_ACCESS_KEY="wrong-secret-value")
    cli = Cli(server.endpoint_url, tmp_path)
    assert cli("doctor", "s3://guarded/p", env=wrong).code == 3
    make_tree(tmp_path / "src", {"a.txt": 1})
    result = cli("upload", "src", "s3://guarded/p", "--ledger", "l.db", env=wrong)
    assert result.code == 3
    assert "wrong-secret-value" not in result.output


def test_bucket_setup_check_and_doctor_on_seaweedfs(
    seaweed_cli, seaweed_s3, seaweed_bucket
) -> None:  # type: ignore[no-untyped-def]
    """SeaweedFS answers NotImplemented for the public access block and for lifecycle
    transitions: those read as unsupported, the other settings are applied and read
    back, and only real drift is exit 1."""
    name = seaweed_bucket
    asked = ("--versioning", "--encryption", "AES256", "--glacier-after", "90")
    first = seaweed_cli("--json", "bucket", "setup", name, *asked)
    assert first.code == 0, first.output
    data = _js(first)
    assert data["unsupported"] == ["public access block", "lifecycle transitions"]
    assert data["not_as_asked"] == []
    assert data["write_test"].startswith("ok")
    states = {s["setting"]: s["state"] for s in data["settings"]}
    assert states["versioning"] == states["encryption"] == states["lifecycle rules"] == "changes"
    assert seaweed_s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    rules = seaweed_s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    assert [r["ID"] for r in rules] == ["s3stow-abort-incomplete"]
    again = seaweed_cli("bucket", "setup", name, *asked)
    assert again.code == 0, again.output
    assert "nothing to change" in again.stdout
    assert "not implemented by this server: public access block" in again.stdout
    assert "checksum" not in again.output  # not the checksum-header hint
    plain = seaweed_cli("bucket", "setup", name, "--no-block-public-access")
    assert plain.code == 0, plain.output
    matches = seaweed_cli("bucket", "setup", name, "--versioning", "--check-only")
    assert matches.code == 0, matches.output
    assert "bucket matches" in matches.stdout
    seaweed_s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Suspended"})
    drift = seaweed_cli("bucket", "setup", name, "--versioning", "--check-only")
    assert drift.code == 1  # real drift still is
    assert "1 setting differing from what was asked" in drift.stdout
    check = seaweed_cli("--json", "bucket", "check", name)
    assert check.code == 0, check.output
    assert _js(check)["public_access_block"] == "unsupported"
    doctor = seaweed_cli("--json", "doctor", f"s3://{name}/p")
    assert doctor.code == 0, doctor.output
    checks = {c["name"]: c for c in _js(doctor)["checks"]}
    assert checks["bucket settings"]["status"] == "OK"
    assert "public access block unsupported" in checks["bucket settings"]["detail"]
    assert "versioning Suspended" in checks["bucket settings"]["detail"]
    # SeaweedFS names no bucket region: say so and which region requests are signed for
    assert "region ?" not in checks["bucket"]["detail"]
    assert "the server names no region" in checks["bucket"]["detail"]


def test_bucket_commands_given_a_url_or_negative_days_say_what_to_give(cli, s3, bucket) -> None:  # type: ignore[no-untyped-def]
    """``bucket setup s3://b`` said only that names are 3-63 characters of a-z...;
    ``bucket check b --abort-older-than -1`` was taken (every upload is older than -1
    days: all were aborted), NaN aborted none, both exit 0."""
    for args in (
        ("setup", f"s3://{bucket}"),
        ("check", f"{bucket}/p"),
        ("check", f"s3://{bucket}/"),
    ):
        result = cli("bucket", *args)
        assert result.code == 2, (args, result.output)
        assert f"give the bucket's name alone: {bucket}" in result.stderr
    assert "3-63 characters" in cli("bucket", "check", "B_ad").stderr
    s3.create_multipart_upload(Bucket=bucket, Key="p/big")
    for days in ("-1", "nan"):
        result = cli("bucket", "check", bucket, "--abort-older-than", days)
        assert result.code == 2, (days, result.output)
        assert f"--abort-older-than {days} is not a number of days" in result.stderr
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads")  # none was aborted
