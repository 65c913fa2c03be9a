"""The fast path's SigV4 signer agrees with botocore's ``S3SigV4Auth`` byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock
from urllib.parse import quote

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from s3stow.store.sigv4 import UNSIGNED_PAYLOAD, Credentials, canonical_query, sign

NOW = datetime(2026, 11, 24, 12, 30, 45, tzinfo=UTC)
key_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40
)
header_value = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30)


def _botocore_authorization(
    *,
    url: str,
    headers: dict[str, str],
    payload_hash: str,
    credentials: Credentials,
    region: str,
) -> tuple[str, dict[str, str]]:
    request = AWSRequest(method="PUT", url=url, data=b"", headers=dict(headers))
    request.headers["X-Amz-Content-SHA256"] = payload_hash
    auth = S3SigV4Auth(
        BotoCredentials(credentials.access_key, credentials.secret_key, credentials.token),
        "s3",
        region,
    )
    with (
        mock.patch.object(auth, "payload", return_value=payload_hash),
        mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)),
    ):
        auth.add_auth(request)
    return request.headers["Authorization"], dict(request.headers.items())


@settings(max_examples=150, deadline=None)
@given(
    key=key_text,
    meta=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True), header_value, max_size=3
    ),
    token=st.none() | st.text(alphabet="abcdefXYZ0123456789+/=", min_size=1, max_size=40),
    part=st.none() | st.integers(min_value=1, max_value=10000),
    signed_payload=st.booleans(),
)
def test_signature_equals_botocore(
    key: str, meta: dict[str, str], token: str | None, part: int | None, signed_payload: bool
) -> None:
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    path = "/bucket/" + quote(key, safe="/~")
    query = {} if part is None else {"partNumber": str(part), "uploadId": "a/b+c=="}
    headers = {"Content-Type": "application/octet-stream", "Content-Length": "12"}
    headers.update({f"x-amz-meta-{k}": v for k, v in meta.items()})
    payload = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    if not signed_payload:
        payload = UNSIGNED_PAYLOAD
        headers["x-amz-checksum-crc32"] = "AAAAAA=="
    ours = sign(
        "PUT",
        path,
        host="127.0.0.1:9000",
        query=query,
        headers=headers,
        payload_hash=payload,
        credentials=credentials,
        region="eu-west-1",
        now=NOW,
    )
    url = f"http://127.0.0.1:9000{path}"
    if query:
        url += "?" + canonical_query(query)
    expected, theirs = _botocore_authorization(
        url=url,
        headers={"Host": "127.0.0.1:9000", **headers},
        payload_hash=payload,
        credentials=credentials,
        region="eu-west-1",
    )
    assert ours["Authorization"] == expected
    assert ours["X-Amz-Date"] == theirs["X-Amz-Date"]
    assert ours.get("X-Amz-Security-Token") == theirs.get("X-Amz-Security-Token")


def test_signing_key_is_cached_per_day_and_region() -> None:
    credentials = Credentials("AKID", "secret")
    first = sign(
        "PUT",
        "/b/k",
        host="h",
        query={},
        headers={},
        payload_hash=UNSIGNED_PAYLOAD,
        credentials=credentials,
        region="us-east-1",
        now=NOW,
    )
    other_region = sign(
        "PUT",
        "/b/k",
        host="h",
        query={},
        headers={},
        payload_hash=UNSIGNED_PAYLOAD,
        credentials=credentials,
        region="us-west-2",
        now=NOW,
    )
    assert first["Authorization"] != other_region["Authorization"]
    assert "us-west-2/s3/aws4_request" in other_region["Authorization"]
    assert "secret" not in first["Authorization"]


def test_the_current_time_stamp_is_botocores_format() -> None:
    import time
    from datetime import UTC, datetime

    from s3stow.store.sigv4 import _stamp

    for _ in range(3):  # a second boundary between the two readings: read again
        before = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        stamp = _stamp(None)
        if stamp == before == datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"):
            break
        time.sleep(0.01)
    assert stamp == before
