"""What botocore resolved for a store, in words, and the fast path checked against it.

For ``doctor``: ``resolution`` names the endpoint, region, addressing, CA bundle and
proxy of the store's botocore client (the very client ``upload`` uses, so the same
resolution); ``compare_fast_path`` sends HeadBucket and one ListObjectsV2 page through
botocore (the fast path learns from them) and then through the fast path, and compares
the answers.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from s3stow.store.capture import connection_of
from s3stow.store.s3 import S3Store


def resolution(store: S3Store) -> dict[str, str]:
    """Endpoint, region, addressing, CA bundle and proxy of ``store``'s client."""
    client = store.client
    connection = connection_of(client)
    endpoint = str(client.meta.endpoint_url)
    addressing = (client.meta.config.s3 or {}).get("addressing_style") or "auto"
    if connection.ca_bundle is not None:
        trust = connection.ca_bundle
    elif connection.tls is not None:
        trust = "none: TLS verification is off"
    else:
        trust = connection.reason
    proxy = connection.proxy_for(endpoint)
    return {
        "endpoint": endpoint,
        "region": str(client.meta.region_name or "none"),
        "addressing": str(addressing),
        "ca_bundle": trust,
        "proxy": urlsplit(proxy).netloc.rpartition("@")[2] if proxy else "none",
    }


def compare_fast_path(store: S3Store, bucket: str, prefix: str) -> tuple[bool, str]:
    """(whether upload's fast path is on for ``bucket`` and got botocore's answers,
    what was found)."""
    fast = store.fast_path if store.client is not None else None  # the client builds it
    if fast is None:
        return False, "off (fast_path: false, or no credentials): botocore sends everything"
    try:
        store.through_botocore(
            bucket, None, "HeadBucket", {}, lambda client: client.head_bucket(Bucket=bucket)
        )
        page = store.through_botocore(
            bucket,
            None,
            "ListObjectsV2",
            {},
            lambda client: client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=5),
        )
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return False, f"not compared: {store.translate(exc, bucket, None).message}"
    reason = fast.off_reason(bucket)
    if reason is None:
        headed = fast.head_bucket(bucket)
        listed = (
            fast.list_page(bucket, prefix, None, max_keys=5, storage_class=False)
            if headed
            else None
        )
        expected = [o["Key"] for o in page.get("Contents", [])]
        if listed is None or [o.key for o in listed[0]] != expected:
            fast.turn_off(bucket, "its answers differed from botocore's")
        reason = fast.off_reason(bucket)
    if reason is not None:
        return False, f"off for {bucket}: {reason}; upload sends every request through botocore"
    template = fast.template(bucket, "ListObjectsV2")
    assert template is not None
    return True, (
        f"HeadBucket and ListObjectsV2 got the same answers through botocore and the fast "
        f"path ({template.url}, signing region {template.region})"
    )
