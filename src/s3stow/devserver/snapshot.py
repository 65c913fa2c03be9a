"""Persistence for ``s3stow dev-server --data-dir``: snapshot and restore of its objects.

moto keeps everything in memory, so the dev server saves its buckets and objects to a
directory when it stops and loads them back when it starts. Bodies are stored by the
SHA-256 of their content under ``DIR/objects/`` (safe file names on every OS, whatever
the key), and ``DIR/manifest.json`` lists, per bucket, each key with its body, content
type, user metadata and checksum algorithm. The manifest is replaced atomically after
every body is written, so a crash while saving leaves the previous snapshot intact;
bodies no manifest refers to are removed afterwards.

What is kept: buckets, object bodies, content type, user metadata, and the checksum
(recomputed by the server with the same algorithm on restore). Not kept: incomplete
multipart uploads, object versions, bucket configuration (lifecycle, encryption,
versioning); objects uploaded in parts come back as single-part objects (new ETag,
same whole-object checksum).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from s3stow.localfiles import atomic_write_text

MANIFEST = "manifest.json"
_ALGORITHMS = ("CRC64NVME", "CRC32C", "CRC32", "SHA256", "SHA1")
DUMMY_KEY = "testing"  # moto accepts any credentials; these are the ones dev-server prints


def _client(endpoint_url: str) -> Any:
    import boto3

    return boto3.session.Session(
        aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_KEY, region_name="us-east-1"
    ).client("s3", endpoint_url=endpoint_url)


def _store_body(client: Any, bucket: str, key: str, objects: Path) -> str:
    """Download one object into ``objects/`` named by its SHA-256; returns the name."""
    partial = objects / ".partial"
    digest = hashlib.sha256()
    with partial.open("wb") as handle:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in iter(lambda: body.read(1 << 20), b""):
            digest.update(chunk)
            handle.write(chunk)
    name = digest.hexdigest()
    partial.replace(objects / name)
    return name


def save_snapshot(endpoint_url: str, data_dir: Path) -> dict[str, int]:
    """Save every bucket and object of the server at ``endpoint_url`` into ``data_dir``."""
    client = _client(endpoint_url)
    objects = data_dir / "objects"
    objects.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, list[dict[str, Any]]] = {}
    count = 0
    for bucket in client.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        entries = manifest.setdefault(name, [])
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                key = item["Key"]
                head = client.head_object(Bucket=name, Key=key, ChecksumMode="ENABLED")
                algorithm = next((a for a in _ALGORITHMS if f"Checksum{a}" in head), None)
                entries.append(
                    {
                        "key": key,
                        "body": _store_body(client, name, key, objects),
                        "content_type": head.get("ContentType"),
                        "metadata": head.get("Metadata", {}),
                        "checksum_algorithm": algorithm,
                    }
                )
                count += 1
    atomic_write_text(data_dir / MANIFEST, json.dumps(manifest, indent=1))
    referenced = {e["body"] for entries in manifest.values() for e in entries}
    for path in objects.iterdir():
        if path.name not in referenced:
            with contextlib.suppress(OSError):
                path.unlink()
    return {"buckets": len(manifest), "objects": count}


def load_snapshot(endpoint_url: str, data_dir: Path) -> dict[str, int]:
    """Recreate the buckets and objects saved in ``data_dir`` (nothing if none saved)."""
    path = data_dir / MANIFEST
    if not path.exists():
        return {"buckets": 0, "objects": 0}
    manifest: dict[str, list[dict[str, Any]]] = json.loads(path.read_text(encoding="utf-8"))
    client = _client(endpoint_url)
    count = 0
    for bucket, entries in manifest.items():
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=bucket)
        for entry in entries:
            extra: dict[str, Any] = {"Metadata": entry.get("metadata") or {}}
            if entry.get("content_type"):
                extra["ContentType"] = entry["content_type"]
            if entry.get("checksum_algorithm"):
                extra["ChecksumAlgorithm"] = entry["checksum_algorithm"]
            with (data_dir / "objects" / entry["body"]).open("rb") as body:
                client.put_object(Bucket=bucket, Key=entry["key"], Body=body, **extra)
            count += 1
    return {"buckets": len(manifest), "objects": count}
