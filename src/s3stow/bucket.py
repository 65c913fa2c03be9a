"""Bucket preparation: ``bucket setup`` brings a bucket to a declared state, idempotently.

``BucketSpec`` says what is wanted (region, versioning, lifecycle, default
encryption, public access block); ``plan_setup`` reads the bucket and returns one
``Change`` per setting (before, after, whether it differs); ``apply`` makes the
changes. Lifecycle rules s3stow manages have ids starting with ``s3stow-``; rules
with other ids are kept as they are (merged by id). ``write_probe`` puts, reads back
and deletes a probe object and names the permission that is missing.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from s3stow.errors import AuthError, ConfigError, S3StowError
from s3stow.store.translate import AUTH_HINT, error_code, translate

RULE_PREFIX = "s3stow-"


@dataclass(frozen=True)
class BucketSpec:
    """The wanted state; ``None`` means "leave as it is"."""

    region: str | None = None
    versioning: bool | None = None
    transition_after: int | None = None
    transition_class: str = "GLACIER"
    expire_after: int | None = None
    abort_incomplete_after: int | None = 7
    prefix: str = ""
    encryption: str | None = None
    kms_key_id: str | None = None
    block_public_access: bool | None = True


@dataclass(frozen=True)
class Change:
    """One setting: what it is, what it should be, and whether they differ."""

    setting: str
    before: str
    after: str

    @property
    def differs(self) -> bool:
        return self.before != self.after


def _code(exc: ClientError) -> str:
    return error_code(exc)


class BucketAdmin:
    """Reads and changes one bucket's configuration through a botocore client."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def _call(self, name: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, name)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            raise translate(exc, bucket=self.bucket) from exc

    # ---- reading -----------------------------------------------------------------------
    def exists(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise translate(exc, bucket=self.bucket) from exc
        return True

    def region(self) -> str:
        location = self._call("get_bucket_location").get("LocationConstraint")
        return location or "us-east-1"

    def versioning(self) -> str:
        return str(self._call("get_bucket_versioning").get("Status") or "Disabled")

    def lifecycle_rules(self) -> list[dict[str, Any]]:
        try:
            response = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) == "NoSuchLifecycleConfiguration":
                return []
            raise translate(exc, bucket=self.bucket) from exc
        return list(response.get("Rules", []))

    def encryption(self) -> str:
        try:
            response = self.client.get_bucket_encryption(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) == "ServerSideEncryptionConfigurationNotFoundError":
                return "none"
            raise translate(exc, bucket=self.bucket) from exc
        rules = response["ServerSideEncryptionConfiguration"]["Rules"]
        default = rules[0]["ApplyServerSideEncryptionByDefault"] if rules else {}
        algorithm = default.get("SSEAlgorithm", "none")
        key = default.get("KMSMasterKeyID")
        return f"{algorithm} ({key})" if key else str(algorithm)

    def public_access_block(self) -> str:
        try:
            response = self.client.get_public_access_block(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) == "NoSuchPublicAccessBlockConfiguration":
                return "off"
            raise translate(exc, bucket=self.bucket) from exc
        flags = response["PublicAccessBlockConfiguration"]
        return "on" if all(flags.values()) else "partial"

    # ---- setup -------------------------------------------------------------------------
    def create(self, region: str | None) -> None:
        args: dict[str, Any] = {}
        if region and region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(Bucket=self.bucket, **args)
        except ClientError as exc:
            code = _code(exc)
            if code == "BucketAlreadyOwnedByYou":
                return
            if code == "BucketAlreadyExists":
                raise ConfigError(
                    f"bucket name {self.bucket!r} is taken by another AWS account",
                    hint="bucket names are global: choose another name",
                ) from exc
            raise translate(exc, bucket=self.bucket) from exc

    def wanted_rules(self, spec: BucketSpec) -> list[dict[str, Any]]:
        """s3stow's own lifecycle rules for ``spec``."""
        rules: list[dict[str, Any]] = []
        scope = {"Prefix": spec.prefix}
        if spec.transition_after is not None or spec.expire_after is not None:
            rule: dict[str, Any] = {
                "ID": RULE_PREFIX + "archive",
                "Status": "Enabled",
                "Filter": scope,
            }
            if spec.transition_after is not None:
                rule["Transitions"] = [
                    {"Days": spec.transition_after, "StorageClass": spec.transition_class}
                ]
            if spec.expire_after is not None:
                rule["Expiration"] = {"Days": spec.expire_after}
            rules.append(rule)
        if spec.abort_incomplete_after is not None:
            rules.append(
                {
                    "ID": RULE_PREFIX + "abort-incomplete",
                    "Status": "Enabled",
                    "Filter": scope,
                    "AbortIncompleteMultipartUpload": {
                        "DaysAfterInitiation": spec.abort_incomplete_after
                    },
                }
            )
        return rules

    def plan_setup(self, spec: BucketSpec) -> tuple[bool, list[Change], list[dict[str, Any]]]:
        """``(exists, changes, merged lifecycle rules)``; reads only."""
        exists = self.exists()
        changes: list[Change] = []
        if not exists:
            changes.append(Change("bucket", "missing", f"created in {spec.region or 'us-east-1'}"))
        current = {
            "region": "-",
            "versioning": "Disabled",
            "encryption": "none",
            "public access block": "off",
        }
        rules: list[dict[str, Any]] = []
        if exists:
            current = {
                "region": self.region(),
                "versioning": self.versioning(),
                "encryption": self.encryption(),
                "public access block": self.public_access_block(),
            }
            rules = self.lifecycle_rules()
        if spec.region and exists and current["region"] != spec.region:
            raise ConfigError(
                f"bucket {self.bucket} is in {current['region']}, not {spec.region}",
                hint="a bucket's region cannot change",
            )
        if spec.versioning is not None:
            want = (
                "Enabled"
                if spec.versioning
                else ("Suspended" if current["versioning"] != "Disabled" else "Disabled")
            )
            changes.append(Change("versioning", current["versioning"], want))
        if spec.encryption is not None:
            want = f"{spec.encryption} ({spec.kms_key_id})" if spec.kms_key_id else spec.encryption
            changes.append(Change("encryption", current["encryption"], want))
        if spec.block_public_access is not None:
            changes.append(
                Change(
                    "public access block",
                    current["public access block"],
                    "on" if spec.block_public_access else "off",
                )
            )
        foreign = [r for r in rules if not str(r.get("ID", "")).startswith(RULE_PREFIX)]
        merged = foreign + self.wanted_rules(spec)
        changes.append(Change("lifecycle rules", _describe(rules), _describe(merged)))
        return exists, changes, merged

    def apply(self, spec: BucketSpec, changes: list[Change], rules: list[dict[str, Any]]) -> None:
        for change in changes:
            if not change.differs:
                continue
            if change.setting == "bucket":
                self.create(spec.region)
            elif change.setting == "versioning":
                self._call(
                    "put_bucket_versioning",
                    VersioningConfiguration={
                        "Status": "Enabled" if spec.versioning else "Suspended"
                    },
                )
            elif change.setting == "encryption":
                default: dict[str, Any] = {"SSEAlgorithm": spec.encryption}
                if spec.kms_key_id:
                    default["KMSMasterKeyID"] = spec.kms_key_id
                self._call(
                    "put_bucket_encryption",
                    ServerSideEncryptionConfiguration={
                        "Rules": [{"ApplyServerSideEncryptionByDefault": default}]
                    },
                )
            elif change.setting == "public access block":
                if spec.block_public_access:
                    self._call(
                        "put_public_access_block",
                        PublicAccessBlockConfiguration={
                            "BlockPublicAcls": True,
                            "IgnorePublicAcls": True,
                            "BlockPublicPolicy": True,
                            "RestrictPublicBuckets": True,
                        },
                    )
                else:
                    self._call("delete_public_access_block")
            elif change.setting == "lifecycle rules":
                if rules:
                    self._call(
                        "put_bucket_lifecycle_configuration",
                        LifecycleConfiguration={"Rules": rules},
                    )
                else:
                    self._call("delete_bucket_lifecycle")

    # ---- check -------------------------------------------------------------------------
    def inventory(self, prefix: str = "") -> tuple[int, int]:
        """``(objects, bytes)`` under ``prefix`` (one paginated listing)."""
        count = size = 0
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                for item in page.get("Contents", []):
                    count += 1
                    size += int(item["Size"])
        except ClientError as exc:
            raise translate(exc, bucket=self.bucket) from exc
        return count, size

    def incomplete_uploads(self, prefix: str = "") -> list[tuple[str, str, float]]:
        """``(key, upload id, age in days)`` of multipart uploads never completed."""
        now = time.time()
        found = []
        try:
            for page in self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                for upload in page.get("Uploads", []):
                    age = (now - upload["Initiated"].timestamp()) / 86400
                    found.append((upload["Key"], upload["UploadId"], age))
        except ClientError as exc:
            raise translate(exc, bucket=self.bucket) from exc
        return found

    def abort_upload(self, key: str, upload_id: str) -> None:
        self._call("abort_multipart_upload", Key=key, UploadId=upload_id)

    def write_probe(self, prefix: str = "") -> None:
        """Put, read back and delete a probe object; name the missing permission."""
        key = f"{prefix}.s3stow-probe-{secrets.token_hex(6)}"
        body = secrets.token_bytes(64)
        for action, permission in (
            ("put", "s3:PutObject"),
            ("get", "s3:GetObject"),
            ("delete", "s3:DeleteObject"),
        ):
            try:
                if action == "put":
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
                elif action == "get":
                    read = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                    if read != body:
                        raise S3StowError(
                            f"the probe object read back differs from what "
                            f"was written to s3://{self.bucket}/{key}"
                        )
                else:
                    self.client.delete_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in ("AccessDenied", "403", "Forbidden"):
                    raise AuthError(
                        f"write test failed: {permission} is not allowed on "
                        f"s3://{self.bucket}/{key}",
                        hint=f"grant {permission} to this identity; " + AUTH_HINT,
                    ) from exc
                raise translate(exc, bucket=self.bucket, key=key) from exc


def _describe(rules: list[dict[str, Any]]) -> str:
    if not rules:
        return "none"
    parts = []
    for rule in sorted(rules, key=lambda r: str(r.get("ID", ""))):
        bits = []
        for transition in rule.get("Transitions", []):
            bits.append(f"{transition.get('StorageClass')} after {transition.get('Days')}d")
        if "Expiration" in rule:
            bits.append(f"expire after {rule['Expiration'].get('Days')}d")
        abort = rule.get("AbortIncompleteMultipartUpload")
        if abort:
            bits.append(f"abort incomplete after {abort.get('DaysAfterInitiation')}d")
        scope = (rule.get("Filter") or {}).get("Prefix", rule.get("Prefix", ""))
        where = f" on {scope!r}" if scope else ""
        parts.append(f"{rule.get('ID', '?')}: {', '.join(bits) or 'custom'}{where}")
    return "; ".join(parts)
