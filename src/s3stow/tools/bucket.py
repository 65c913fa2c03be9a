"""Bucket preparation: ``bucket setup`` brings a bucket to a declared state, idempotently.

``BucketSpec`` says what is wanted (region, versioning, lifecycle, default
encryption, public access block); ``plan_setup`` reads the bucket and returns one
``Change`` per setting (before, after, whether it differs); ``apply`` makes the
changes and ``verify_applied`` reads each changed setting back. Lifecycle rules s3stow
manages have ids starting with ``s3stow-``; rules with other ids are kept as they are
(merged by id). A setting the server does not implement (``NotImplemented``, as
SeaweedFS answers for the public access block and for lifecycle transitions) reads as
``unsupported``: it is reported, never drift, and the other settings are still
applied. ``write_probe`` puts, reads back and deletes a probe object and names the
permission that is missing.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import ClientError

from s3stow.errors import AuthError, ConfigError, S3StowError
from s3stow.store.translate import AUTH_HINT, error_code, translate

RULE_PREFIX = "s3stow-"
UNSUPPORTED = "unsupported"
_NOT_IMPLEMENTED = frozenset({"NotImplemented", "501", "XNotImplemented"})


class Unsupported(Exception):
    """The server does not implement this bucket setting."""


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
    unsupported: bool = False  # the server does not implement it: never drift

    @property
    def differs(self) -> bool:
        return not self.unsupported and self.before != self.after

    @property
    def state(self) -> str:
        """``ok``, ``changes`` or ``unsupported`` (the table's last column)."""
        return UNSUPPORTED if self.unsupported else ("changes" if self.differs else "ok")


def _code(exc: ClientError) -> str:
    return error_code(exc)


class BucketAdmin:
    """Reads and changes one bucket's configuration through a botocore client."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def _call(self, name: str, *, absent: str = "", **kwargs: Any) -> Any:
        """One bucket call; ``absent``: the error code meaning "not configured" (``None``
        is returned). Raises ``Unsupported`` when the server does not implement it."""
        try:
            return getattr(self.client, name)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = _code(exc)
            if code == absent:
                return None
            if code in _NOT_IMPLEMENTED:
                raise Unsupported(name) from exc
            raise translate(exc, bucket=self.bucket) from exc

    def read(self, setting: str) -> str:
        """The current value of a setting, or ``unsupported``."""
        readers: dict[str, Callable[[], str]] = {
            "region": self.region,
            "versioning": self.versioning,
            "encryption": self.encryption,
            "public access block": self.public_access_block,
            "lifecycle rules": lambda: _describe(self.lifecycle_rules()),
        }
        try:
            return readers[setting]()
        except Unsupported:
            return UNSUPPORTED

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
        name = "get_bucket_lifecycle_configuration"
        response = self._call(name, absent="NoSuchLifecycleConfiguration")
        return list(response.get("Rules", [])) if response else []

    def encryption(self) -> str:
        absent = "ServerSideEncryptionConfigurationNotFoundError"
        response = self._call("get_bucket_encryption", absent=absent)
        if response is None:
            return "none"
        rules = response["ServerSideEncryptionConfiguration"]["Rules"]
        default = rules[0]["ApplyServerSideEncryptionByDefault"] if rules else {}
        algorithm = default.get("SSEAlgorithm", "none")
        key = default.get("KMSMasterKeyID")
        return f"{algorithm} ({key})" if key else str(algorithm)

    def public_access_block(self) -> str:
        absent = "NoSuchPublicAccessBlockConfiguration"
        response = self._call("get_public_access_block", absent=absent)
        if response is None:
            return "off"
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
            "lifecycle rules": "none",
        }
        rules: list[dict[str, Any]] = []
        if exists:
            current = {name: self.read(name) for name in current if name != "lifecycle rules"}
            try:
                rules = self.lifecycle_rules()
                current["lifecycle rules"] = _describe(rules)
            except Unsupported:
                current["lifecycle rules"] = UNSUPPORTED
        if spec.region and current["region"] not in ("-", UNSUPPORTED, spec.region):
            raise ConfigError(
                f"bucket {self.bucket} is in {current['region']}, not {spec.region}",
                hint="a bucket's region cannot change",
            )

        def change(setting: str, want: str) -> Change:
            before = current[setting]
            return Change(setting, before, want, unsupported=before == UNSUPPORTED)

        if spec.versioning is not None:
            want = (
                "Enabled"
                if spec.versioning
                else (
                    "Suspended"
                    if current["versioning"] not in ("Disabled", UNSUPPORTED)
                    else "Disabled"
                )
            )
            changes.append(change("versioning", want))
        if spec.encryption is not None:
            want = f"{spec.encryption} ({spec.kms_key_id})" if spec.kms_key_id else spec.encryption
            changes.append(change("encryption", want))
        if spec.block_public_access is not None:
            changes.append(
                change("public access block", "on" if spec.block_public_access else "off")
            )
        foreign = [r for r in rules if not str(r.get("ID", "")).startswith(RULE_PREFIX)]
        merged = foreign + self.wanted_rules(spec)
        changes.append(change("lifecycle rules", _describe(merged)))
        return exists, changes, merged

    def apply(
        self, spec: BucketSpec, changes: list[Change], rules: list[dict[str, Any]]
    ) -> list[Change]:
        """Make each differing change; return the rows as they ended. A setting the
        server refuses as not implemented is marked unsupported and the others are
        still made; lifecycle rules whose transitions it does not implement are set
        without those rules (reported as a row of their own)."""
        rows: list[Change] = []
        for change in changes:
            if not change.differs:
                rows.append(change)
                continue
            try:
                rows.extend(self._apply(spec, change, rules))
            except Unsupported:
                rows.append(replace(change, unsupported=True))
        return rows

    def _apply(self, spec: BucketSpec, change: Change, rules: list[dict[str, Any]]) -> list[Change]:
        if change.setting == "bucket":
            self.create(spec.region)
        elif change.setting == "versioning":
            status = "Enabled" if spec.versioning else "Suspended"
            self._call("put_bucket_versioning", VersioningConfiguration={"Status": status})
        elif change.setting == "encryption":
            default: dict[str, Any] = {"SSEAlgorithm": spec.encryption}
            if spec.kms_key_id:
                default["KMSMasterKeyID"] = spec.kms_key_id
            rule = {"ApplyServerSideEncryptionByDefault": default}
            self._call("put_bucket_encryption", ServerSideEncryptionConfiguration={"Rules": [rule]})
        elif change.setting == "public access block":
            if spec.block_public_access:
                flags = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy")
                config = dict.fromkeys((*flags, "RestrictPublicBuckets"), True)
                self._call("put_public_access_block", PublicAccessBlockConfiguration=config)
            else:
                self._call("delete_public_access_block")
        elif change.setting == "lifecycle rules":
            return self._apply_lifecycle(change, rules)
        return [change]

    def _apply_lifecycle(self, change: Change, rules: list[dict[str, Any]]) -> list[Change]:
        if not rules:
            self._call("delete_bucket_lifecycle")
            return [change]
        try:
            self._call(
                "put_bucket_lifecycle_configuration", LifecycleConfiguration={"Rules": rules}
            )
            return [change]
        except Unsupported:
            moving = [r for r in rules if "Transitions" in r]
            kept = [r for r in rules if "Transitions" not in r]
            if not moving or not kept:
                raise
        # Some servers (SeaweedFS) implement lifecycle rules but not transitions.
        self._call("put_bucket_lifecycle_configuration", LifecycleConfiguration={"Rules": kept})
        return [
            replace(change, after=_describe(kept)),
            Change("lifecycle transitions", UNSUPPORTED, _describe(moving), unsupported=True),
        ]

    def verify_applied(self, rows: list[Change]) -> list[Change]:
        """Read back every setting that was changed: those that do not read as asked."""
        wrong = []
        for row in rows:
            if row.differs and row.setting != "bucket":
                now = self.read(row.setting)
                if now != row.after:
                    wrong.append(Change(row.setting, now, row.after))
        return wrong

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
