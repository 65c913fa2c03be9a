"""What the fast path takes from botocore: a recorded request, proved before it is
copied, and the TLS trust and proxies of botocore's HTTP session."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from s3stow.config import Settings
from s3stow.devserver.moto import LocalS3Server
from s3stow.store.capture import Connection, Recorder, Sent, connection_of, learn
from s3stow.store.client import make_client
from s3stow.store.sigv4 import Credentials
from s3stow.store.wire import put_headers
from tests.recordproxy import make_ca

TESTING = Credentials("testing", "testing")
# as s3stow sends them: a checksum of its own (else botocore would add one)
ARGS = {
    "ContentType": "text/plain",
    "Metadata": {"team": "data"},
    "ChecksumAlgorithm": "CRC32",
    "ChecksumCRC32": "rfPzYw==",
}
PLAIN = Connection(None, None, lambda _url: None)


@pytest.fixture
def recorded(s3_server: LocalS3Server, bucket: str) -> tuple[list[Sent], dict[str, str]]:
    """botocore's PutObject of ``k/a b~ü`` as the recorder saw it, and the fast path's
    headers for the same request."""
    client = make_client(Settings(endpoint_url=s3_server.endpoint_url))
    recorder = Recorder()
    recorder.attach(client)
    with recorder.recording() as sent:
        client.put_object(Bucket=bucket, Key="k/a b~ü", Body=b"data", **ARGS)
    headers = put_headers(ARGS)
    assert headers is not None
    return sent, headers


def test_learn_copies_botocores_request(
    recorded: tuple[list[Sent], dict[str, str]], s3_server: LocalS3Server, bucket: str
) -> None:
    sent, headers = recorded
    template = learn(
        sent,
        operation="PutObject",
        key="k/a b~ü",
        headers=headers,
        credentials=TESTING,
        connection=PLAIN,
    )
    assert not isinstance(template, str), template
    assert (template.scheme, template.region, template.service) == ("http", "us-east-1", "s3")
    assert template.address == template.host == f"127.0.0.1:{s3_server.port}"
    assert template.prefix == f"/{bucket}/"
    assert template.path("x y/ü") == f"/{bucket}/x%20y/%C3%BC"
    assert template.unsigned is False  # plain http: botocore signs the payload


def _header(sent: Sent, name: str, value: str | None) -> Sent:
    kept = tuple((k, v) for k, v in sent.headers if k.lower() != name.lower())
    return replace(sent, headers=kept + (((name, value),) if value is not None else ()))


def _tampered_signature(sent: Sent) -> Sent:
    value = sent.header("Authorization") or ""
    return _header(sent, "Authorization", value[:-1] + ("0" if value[-1] != "0" else "1"))


PROXY = Connection(None, None, lambda _url: "http://proxy.example:3128")
CASES: dict[str, tuple[Callable[[Sent], Sent], dict[str, Any], str]] = {
    "other credentials": (lambda s: s, {"credentials": Credentials("AKIDOTHER", "x")}, "other"),
    "another token": (
        lambda s: s,
        {"credentials": Credentials("testing", "testing", "token")},
        "session token",
    ),
    "a streaming payload": (
        lambda s: _header(s, "X-Amz-Content-SHA256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
        {},
        "signs the payload as STREAMING",
    ),
    "a header botocore adds": (
        lambda s: _header(s, "x-amz-request-payer", "requester"),
        {},
        "different headers (x-amz-request-payer)",
    ),
    "a header only the fast path sends": (
        lambda s: s,
        {"extra": {"x-amz-storage-class": "GLACIER"}},
        "different headers (x-amz-storage-class)",
    ),
    "another signature": (_tampered_signature, {}, "signature"),
    "SigV4a": (
        lambda s: _header(s, "Authorization", "AWS4-ECDSA-P256-SHA256 Credential=x"),
        {},
        "AWS4-ECDSA-P256-SHA256, not plain SigV4",
    ),
    "another key": (lambda s: s, {"key": "k/other"}, "does not end in the key"),
    "a proxy": (lambda s: s, {"connection": PROXY}, "through a proxy"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_learn_refuses_what_it_cannot_reproduce(
    name: str, recorded: tuple[list[Sent], dict[str, str]]
) -> None:
    sent, headers = recorded
    change, options, reason = CASES[name]
    outgoing = {**headers, **options.get("extra", {})}
    found = learn(
        [change(s) for s in sent],
        operation="PutObject",
        key=options.get("key", "k/a b~ü"),
        headers=outgoing,
        credentials=options.get("credentials", TESTING),
        connection=options.get("connection", PLAIN),
    )
    assert isinstance(found, str)
    assert reason in found


def test_https_without_botocores_trust_is_refused(
    recorded: tuple[list[Sent], dict[str, str]],
) -> None:
    """An https request botocore sent, and no TLS context equal to botocore's: refused
    (the scheme is not signed, so everything else about the request still matches)."""
    sent, headers = recorded
    found = learn(
        sent,
        operation="PutObject",
        key="k/a b~ü",
        headers=headers,
        credentials=TESTING,
        connection=Connection(None, None, lambda _url: None, "no context like botocore's"),
    )
    assert not isinstance(found, str)  # plain http needs none
    https = [replace(s, url=s.url.replace("http://", "https://")) for s in sent]
    refused = learn(
        https,
        operation="PutObject",
        key="k/a b~ü",
        headers=headers,
        credentials=TESTING,
        connection=Connection(None, None, lambda _url: None, "no context like botocore's"),
    )
    assert refused == "no context like botocore's"


def _ca_names(context: ssl.SSLContext) -> set[str]:
    return {
        str(dict(item[0] for item in cert["subject"]).get("commonName", ""))
        for cert in context.get_ca_certs()
    }


@pytest.mark.parametrize(
    ("where", "trusted"),
    [
        ("nowhere", False),
        ("SSL_CERT_FILE", False),  # OpenSSL's default paths are not botocore's trust
        ("AWS_CA_BUNDLE", True),
        ("REQUESTS_CA_BUNDLE", True),
        ("ca_bundle in the credentials file", True),
        ("--ca-bundle", True),
    ],
)
def test_tls_trust_is_exactly_botocores(
    where: str, trusted: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(variable, raising=False)
    ca, _, _ = make_ca(tmp_path)
    settings = Settings(endpoint_url="https://127.0.0.1:9")
    if where == "--ca-bundle":
        settings = Settings(endpoint_url="https://127.0.0.1:9", ca_bundle=str(ca))
    elif where == "ca_bundle in the credentials file":
        credentials = tmp_path / "credentials"
        credentials.write_text(f"[default]\nca_bundle = {ca}\n")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    elif where != "nowhere":
        monkeypatch.setenv(where, str(ca))
    connection = connection_of(make_client(settings))
    assert connection.tls is not None, connection.reason
    assert connection.tls.verify_mode == ssl.CERT_REQUIRED
    assert connection.tls.check_hostname
    assert ("s3stow test CA" in _ca_names(connection.tls)) is trusted
    if not trusted:
        import certifi

        assert connection.ca_bundle == certifi.where()


def test_no_verification_and_unusable_bundles(tmp_path: Path) -> None:
    off = connection_of(make_client(Settings(endpoint_url="https://h:9", verify_ssl=False)))
    assert off.tls is not None
    assert off.tls.verify_mode == ssl.CERT_NONE
    assert off.ca_bundle is None
    folder = connection_of(
        make_client(Settings(endpoint_url="https://h:9", ca_bundle=str(tmp_path)))
    )
    assert folder.tls is None
    assert "not a file" in folder.reason


def test_proxies_are_botocores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "bypassed.example")
    through = connection_of(make_client(Settings(endpoint_url="https://s3.example:9")))
    assert through.proxy_for("https://bucket.s3.example:9/k") == "http://user:pw@proxy.example:3128"
    assert through.proxy_for("http://s3.example:9/k") is None  # no HTTP_PROXY
    bypassed = connection_of(make_client(Settings(endpoint_url="https://bypassed.example:9")))
    assert bypassed.proxy_for("https://bypassed.example:9/k") is None


def test_the_payload_hash_follows_what_botocore_signed(
    s3_server: LocalS3Server, bucket: str
) -> None:
    """Over plain http botocore signs the payload: a store that learned a write says so,
    so a large body's hashing pass computes the SHA-256 too."""
    from s3stow.store.base import WriteOptions
    from s3stow.store.checksums import compute
    from s3stow.store.s3 import S3Store

    store = S3Store.from_settings(Settings(endpoint_url=s3_server.endpoint_url))
    assert store.signs_payload(bucket) is False  # nothing learned yet
    store.put_object(bucket, "k", b"x", digest=compute("crc32", b"x"), options=WriteOptions())
    assert store.signs_payload(bucket) is True
    assert store.custom_endpoint() is True


def test_credentials_that_changed_while_learning_are_tried_again(
    recorded: tuple[list[Sent], dict[str, str]], bucket: str
) -> None:
    """Refreshed credentials (SSO, roles) can differ between botocore's signature and the
    check: the fast path learns from a later request, and stays off only when the keys
    differ every time."""
    from botocore.credentials import Credentials as BotocoreCredentials

    from s3stow.store.fastpath import FastPath

    sent, headers = recorded
    fast = FastPath(
        credentials=BotocoreCredentials("AKIDREFRESHED", "x"), connection=PLAIN, timeout=(5, 5)
    )
    for _ in range(2):
        fast.learn(bucket, "PutObject", key="k/a b~ü", headers=headers, sent=sent)
        assert fast.off_reason(bucket) is None
        assert not fast.knows(bucket, "PutObject", headers)
    fast.learn(bucket, "PutObject", key="k/a b~ü", headers=headers, sent=sent)
    assert "other credentials" in (fast.off_reason(bucket) or "")
    fresh = FastPath(credentials=BotocoreCredentials("testing", "testing"), connection=PLAIN,
                     timeout=(5, 5))  # fmt: skip
    fresh.learn(bucket, "PutObject", key="k/a b~ü", headers=headers, sent=sent)
    assert fresh.knows(bucket, "PutObject", headers)


def test_a_botocore_whose_session_cannot_be_read_leaves_the_fast_path_off(
    recorded: tuple[list[Sent], dict[str, str]],
) -> None:
    """Should botocore's HTTP session change shape, nothing about TLS or proxies is
    known: the fast path stays off instead of guessing."""
    unknown = connection_of(object())
    assert not unknown.known
    found = learn(
        recorded[0],
        operation="PutObject",
        key="k/a b~ü",
        headers=recorded[1],
        credentials=TESTING,
        connection=unknown,
    )
    assert found == "botocore's HTTP session does not show its TLS and proxy settings"
