"""Conformance with botocore: s3stow sends nothing boto3 would not (issue 18).

Each sending case runs s3stow (``upload``, ``verify``, ``retry``, ``bucket check``,
``doctor``, in one process) and then a boto3 script with the same kinds of requests,
both in the same clean environment: only the case's variables and a temporary HOME
with the case's AWS config and credentials files. A recording proxy
(tests/recordproxy.py) in front of the moto server sees every request; what s3stow
sent (host, addressing, signing region and service, access key, session token,
proxy, TLS trust, a PUT's payload signing) must be among what boto3 sent, and
``--debug`` must show no attempt at any other host. Cases that need AWS itself
(partitions, the global endpoint, FIPS, ...) compare, without sending, the URL and
scope the fast path would use with the request botocore prepares.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from s3stow.devserver.moto import LocalS3Server, free_port
from tests.conftest import FIVE_MIB_PARTS, make_tree
from tests.recordproxy import RecordingProxy, make_ca

KEYS = {"AWS_ACCESS_KEY_ID": "AKIDCONFORMANCE0001", "AWS_SECRET_ACCESS_KEY": "conformance"}
CREDENTIALS = "[{profile}]\naws_access_key_id = {key}\naws_secret_access_key = s3cr3t\n"

S3STOW = """
import json, sys
from s3stow.cli.app import main
codes = []
for argv in json.loads(sys.argv[1]):
    try:
        main(argv)
    except SystemExit as exit:
        codes.append(exit.code or 0)
print("CODES", json.dumps(codes))
"""

BOTO3 = """
import base64, hashlib, json, sys, zlib
import boto3
from botocore.config import Config
args = json.loads(sys.argv[1])
style = args["addressing"]
s3 = boto3.client("s3", endpoint_url=args["endpoint"],
                  config=Config(s3={"addressing_style": style}) if style else None)
sts = boto3.client("sts", endpoint_url=args["endpoint"])
bucket, body = args["bucket"], b"x" * 100
crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
errors = []
def attempt(call, **kw):
    try:
        return call(**kw)
    except Exception as exc:
        errors.append(f"{call.__name__}: {type(exc).__name__}")
attempt(s3.head_bucket, Bucket=bucket)
attempt(s3.list_objects_v2, Bucket=bucket, Prefix="p/")
attempt(s3.get_bucket_location, Bucket=bucket)
attempt(s3.get_bucket_versioning, Bucket=bucket)
attempt(s3.list_multipart_uploads, Bucket=bucket)
meta = {"Metadata": {"k": "v"}, "ContentType": "text/plain", "ChecksumCRC32": crc}
attempt(s3.put_object, Bucket=bucket, Key="ref/md5", Body=body, ContentMD5=md5, **meta)
attempt(s3.put_object, Bucket=bucket, Key="ref/crc", Body=body, **meta)
attempt(s3.put_object, Bucket=bucket, Key="ref/plain", Body=body)
attempt(s3.get_object, Bucket=bucket, Key="ref/plain")
attempt(s3.delete_object, Bucket=bucket, Key="ref/plain")
started = attempt(s3.create_multipart_upload, Bucket=bucket, Key="ref/mp")
if started:
    part = {"Bucket": bucket, "Key": "ref/mp", "UploadId": started["UploadId"], "Body": body}
    attempt(s3.upload_part, PartNumber=1, ContentMD5=md5, ChecksumCRC32=crc, **part)
    attempt(s3.upload_part, PartNumber=2, ChecksumCRC32=crc, **part)
    attempt(s3.abort_multipart_upload, Bucket=bucket, Key="ref/mp", UploadId=started["UploadId"])
attempt(sts.get_caller_identity)
print("ERRORS", json.dumps(errors))
"""


@dataclass
class Case:
    env: dict[str, str]
    files: dict[str, str] = field(default_factory=dict)  # under HOME
    flags: list[str] = field(default_factory=list)  # s3stow's global options
    endpoint: str | None = None  # what boto3 is given as endpoint_url (the flag)
    addressing: str | None = None  # what boto3 is given as addressing_style (the flag)
    dotted: bool = False
    multipart: bool = False
    refused: bool = False  # TLS: boto3 does not trust the endpoint, s3stow must not
    fast: bool = True  # the fast path takes part (False: botocore sends all)


PROFILE = CREDENTIALS.format(profile="work", key="AKIDPROFILEWORK00001")
CASES = {
    "AWS_ENDPOINT_URL": Case({**KEYS, "AWS_ENDPOINT_URL": "{http}"}, multipart=True),
    "AWS_ENDPOINT_URL_S3 and AWS_DEFAULT_REGION": Case(
        {**KEYS, "AWS_ENDPOINT_URL_S3": "{http}", "AWS_DEFAULT_REGION": "eu-west-1"}
    ),
    "endpoint_url and region in a config profile, AWS_PROFILE, credentials file": Case(
        {"AWS_PROFILE": "work"},
        files={
            ".aws/config": "[profile work]\nregion = eu-central-1\nendpoint_url = {http}\n",
            ".aws/credentials": PROFILE,
        },
    ),
    "endpoint_url and region in the credentials file, no config file": Case(
        {},
        files={
            ".aws/credentials": CREDENTIALS.format(profile="default", key="AKIDCREDFILE0000001")
            + "region = ap-southeast-2\nendpoint_url = {http}\n"
        },
    ),
    "--endpoint-url over S3STOW_ENDPOINT_URL and AWS_ENDPOINT_URL": Case(
        {**KEYS, "S3STOW_ENDPOINT_URL": "{closed}", "AWS_ENDPOINT_URL": "{closed}"},
        flags=["--endpoint-url", "{http}"],
        endpoint="{http}",
    ),
    "credential_process with a session token": Case(
        {"AWS_ENDPOINT_URL": "{http}"},
        files={
            ".aws/config": "[default]\nregion = us-west-2\ncredential_process = {process}\n",
            "process.py": "import json\nprint(json.dumps({'Version': 1, 'AccessKeyId': "
            "'AKIDPROCESS00000001', 'SecretAccessKey': 's', 'SessionToken': 'process-token'}))\n",
        },
    ),
    "AWS_SESSION_TOKEN": Case(
        {**KEYS, "AWS_SESSION_TOKEN": "env-token", "AWS_ENDPOINT_URL_S3": "{http}"}
    ),
    "HTTP_PROXY": Case({**KEYS, "AWS_ENDPOINT_URL": "{moto}", "HTTP_PROXY": "{http}"}, fast=False),
    "NO_PROXY": Case(
        {**KEYS, "AWS_ENDPOINT_URL": "{http}", "HTTP_PROXY": "{closed}", "NO_PROXY": "127.0.0.1"}
    ),
    "s3.addressing_style = path in the config file": Case(
        {**KEYS, "AWS_ENDPOINT_URL": "{http_localhost}"},
        files={".aws/config": "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n"},
    ),
    "AWS_CA_BUNDLE, and the ETag check off (a checksum without Content-MD5)": Case(
        {
            **KEYS,
            "AWS_ENDPOINT_URL": "{https}",
            "AWS_CA_BUNDLE": "{ca}",
            "S3STOW_ETAG_CHECK": "off",
        }
    ),
    "REQUESTS_CA_BUNDLE": Case(
        {**KEYS, "AWS_ENDPOINT_URL": "{https}", "REQUESTS_CA_BUNDLE": "{ca}"}
    ),
    "ca_bundle and region in the credentials file, no config file": Case(
        {"AWS_ENDPOINT_URL": "{https}"},
        files={
            ".aws/credentials": CREDENTIALS.format(profile="default", key="AKIDCREDFILE0000002")
            + "region = eu-north-1\nca_bundle = {ca}\n"
        },
    ),
    "SSL_CERT_FILE does not widen trust": Case(
        {**KEYS, "AWS_ENDPOINT_URL": "{https}", "SSL_CERT_FILE": "{ca}"}, refused=True
    ),
    "payload_signing_enabled = true": Case(
        {**KEYS, "AWS_CA_BUNDLE": "{ca}"},
        files={
            ".aws/config": "[default]\nregion = eu-west-3\n"
            "s3 =\n    payload_signing_enabled = true\n"
        },
        flags=["--endpoint-url", "{https}"],
        endpoint="{https}",
    ),
    "a bucket with dots over https": Case(
        {**KEYS, "AWS_CA_BUNDLE": "{ca}", "AWS_DEFAULT_REGION": "us-east-2"},
        flags=["--endpoint-url", "{https_localhost}"],
        endpoint="{https_localhost}",
        dotted=True,
    ),
}


@pytest.fixture(scope="module")
def recorder(
    s3_server: LocalS3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RecordingProxy, Path]]:
    directory = tmp_path_factory.mktemp("tls")
    ca, cert, key = make_ca(directory)
    proxy = RecordingProxy(("127.0.0.1", s3_server.port), cert=cert, key=key)
    proxy.start()
    yield proxy, ca
    proxy.stop()


def _fill(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def _tail(output: str) -> str:
    """What a failed assertion shows: the output without the debug log."""
    return "\n".join(line for line in output.splitlines() if " DEBUG " not in line)[-4000:]


def _run(code: str, argument: Any, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(argument)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.mark.parametrize("name", list(CASES))
def test_s3stow_sends_nothing_boto3_would_not(
    name: str, recorder: tuple[RecordingProxy, Path], s3: Any, tmp_path: Path
) -> None:
    proxy, ca = recorder
    case = CASES[name]
    home = tmp_path / "home"
    values = {
        "http": f"http://127.0.0.1:{proxy.http_port}",
        "https": f"https://127.0.0.1:{proxy.https_port}",
        "http_localhost": f"http://localhost:{proxy.http_port}",
        "https_localhost": f"https://localhost:{proxy.https_port}",
        "moto": f"http://127.0.0.1:{proxy.upstream[1]}",
        "closed": f"http://127.0.0.1:{free_port()}",
        "ca": str(ca),
        "process": f"{sys.executable} {home / 'process.py'}",
    }
    for relative, text in case.files.items():
        path = home / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_fill(text, values))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "USERPROFILE": str(home),  # Windows' home
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_STS": values["http"],  # doctor's caller identity: on loopback too
        **{k: _fill(v, values) for k, v in case.env.items()},
    }
    kept = ("SYSTEMROOT", "TMPDIR", "TEMP", "PYTHONPATH")
    env.update({k: os.environ[k] for k in kept if k in os.environ})
    bucket = f"t{'.dots' if case.dotted else ''}-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=bucket)
    make_tree(tmp_path / "src", {"a.txt": 100, "d/b.txt": 200, "d/c.txt": 300})
    make_tree(tmp_path / "again", {"r1.txt": 50, "r2.txt": 60})
    if case.multipart:
        make_tree(tmp_path / "src", {"big.bin": 6 * 1024 * 1024})
    (tmp_path / "aws.log").write_text(
        "".join(
            f"upload failed: ./again/{f} to s3://{bucket}/r/{f} An error occurred "
            "(InternalError) when calling the PutObject operation: try again\n"
            for f in ("r1.txt", "r2.txt")
        )
    )
    flags = ["--debug", *(_fill(f, values) for f in case.flags)]
    target = f"s3://{bucket}/p"
    parts = list(FIVE_MIB_PARTS) if case.multipart else []
    commands = [
        [*flags, "upload", "src", target, "--ledger", "l.db", "--concurrency", "1", *parts],
        [*flags, "verify", "src", target, "--ledger", "l.db"],
        [*flags, "retry", "--from", "aws.log", "--base-dir", ".", "--ledger", "l.db"],
        [*flags, "bucket", "check", bucket],
        [*flags, "--json", "doctor", target],
    ]
    mark = proxy.mark()
    output = _run(S3STOW, commands, {**env, "S3STOW_CONCURRENCY": "1"}, tmp_path)
    ours, ours_refused = proxy.since(mark)
    mark = proxy.mark()
    reference = {
        "endpoint": _fill(case.endpoint, values) if case.endpoint else None,
        "addressing": case.addressing,
        "bucket": bucket,
    }
    boto_output = _run(BOTO3, reference, env, tmp_path)
    theirs, theirs_refused = proxy.since(mark)

    codes = json.loads(output.split("CODES ", 1)[1].splitlines()[0])
    errors = json.loads(boto_output.split("ERRORS ", 1)[1].splitlines()[0])
    if case.refused:  # neither trusts the endpoint: nothing sent, every command fails
        assert (ours, theirs) == ([], [])
        assert ours_refused
        assert theirs_refused
        assert all(code == 3 for code in codes), _tail(output)
        assert "head_bucket: SSLError" in errors
        return
    assert codes == [0, 0, 0, 0, 0], _tail(output)
    # STS needs a region (s3stow's doctor then warns too)
    assert set(errors) <= {"get_caller_identity: NoRegionError"}, boto_output
    assert ours_refused == theirs_refused == 0
    allowed = {seen.shape(bucket) for seen in theirs}
    extra = [seen for seen in ours if seen.shape(bucket) not in allowed]
    assert not extra, f"s3stow sent what boto3 did not: {extra[:3]}; boto3 sent {allowed}"
    assert any(seen.fast for seen in ours) is case.fast
    # nothing was tried anywhere else (a request to another host never reaches the proxy)
    tried = set(re.findall(r"fast path \w+ ([^/\s]+)/", output))
    tried |= {
        url.split("/")[2]
        for url in re.findall(r"Sending http request: <AWSPreparedRequest [^>]*?url=(\S+),", output)
    }
    assert tried
    assert tried <= {seen.host for seen in ours} | {values["moto"].split("/")[2]}, tried
    # doctor reports what upload used: endpoint, signing region, addressing, CA bundle,
    # and whether the fast path got botocore's answers
    report = json.loads(next(line for line in output.splitlines() if line.startswith('{"ok"')))
    checks = {check["name"]: check for check in report["checks"]}
    endpoint = checks["endpoint"]["detail"]
    s3_seen = [seen for seen in ours if seen.service == "s3"]
    assert f"region {s3_seen[0].region}," in endpoint
    assert s3_seen[0].host in endpoint
    addressing = "path" if "addressing_style = path" in str(case.files) else "auto"
    assert f"addressing {addressing}," in endpoint
    if "{ca}" in str(case.env) + str(case.files):
        assert f"CA bundle {ca}," in endpoint
    fast = checks["fast path"]
    assert (fast["status"] == "OK") is case.fast, fast
    if not case.fast:
        assert "proxy" in fast["detail"]


class _Empty:
    """The body of a 200 answer that was never sent for (see ``_answer_without_sending``)."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield from ()


NO_SEND = {
    # name: (environment, config file, settings flags, dotted bucket, a regex of the URL)
    "aws-cn partition": (
        {},
        "",
        {"region": "cn-north-1"},
        False,
        ".s3.cn-north-1.amazonaws.com.cn/",
    ),
    "aws-us-gov partition": ({}, "", {"region": "us-gov-west-1"}, False, ".s3.us-gov-west-1."),
    "aws-global": ({}, "", {"region": "aws-global"}, False, ".s3.amazonaws.com/"),
    "us-east-1 legacy global endpoint": (
        {"AWS_S3_US_EAST_1_REGIONAL_ENDPOINT": "legacy"},
        "",
        {"region": "us-east-1"},
        False,
        ".s3.amazonaws.com/",
    ),
    "us-east-1 regional endpoint": (
        {},
        "[default]\ns3_us_east_1_regional_endpoint = regional\n",
        {"region": "us-east-1"},
        False,
        ".s3.us-east-1.amazonaws.com/",
    ),
    "FIPS": ({"AWS_USE_FIPS_ENDPOINT": "true"}, "", {"region": "us-west-2"}, False, "s3-fips."),
    "dual-stack": (
        {"AWS_USE_DUALSTACK_ENDPOINT": "true"},
        "",
        {"region": "eu-west-1"},
        False,
        ".s3.dualstack.eu-west-1.",
    ),
    "accelerate": (
        {},
        "[default]\ns3 =\n    use_accelerate_endpoint = true\n",
        {"region": "eu-west-1"},
        False,
        ".s3-accelerate.amazonaws.com/",
    ),
    "s3.addressing_style = path in the config file": (
        {},
        "[default]\nregion = ap-south-1\ns3 =\n    addressing_style = path\n",
        {},
        False,
        "//s3.ap-south-1.amazonaws.com/t-",
    ),
    "--path-style over the config file's virtual": (
        {},
        "[default]\nregion = eu-west-2\ns3 =\n    addressing_style = virtual\n",
        {"path_style": True},
        False,
        "//s3.eu-west-2.amazonaws.com/t-",
    ),
    "--virtual-style over the config file's path": (
        {},
        "[default]\ns3 =\n    addressing_style = path\n",
        {"region": "eu-west-1", "path_style": False},
        False,
        r"://t-[0-9a-f]+\.s3\.eu-west-1\.amazonaws\.com/",
    ),
    "a dotted bucket over https (auto: path-style)": (
        {},
        "",
        {"region": "eu-west-1"},
        True,
        "//s3.eu-west-1.amazonaws.com/t.dots",
    ),
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": (
        {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
        "",
        {"region": "sa-east-1"},
        False,
        ".s3.sa-east-1.amazonaws.com/",
    ),
    "payload_signing_enabled = true": (
        {},
        "[default]\nregion = ca-central-1\ns3 =\n    payload_signing_enabled = true\n",
        {},
        False,
        ".s3.ca-central-1.amazonaws.com/",
    ),
}


@pytest.mark.parametrize("name", list(NO_SEND))
@pytest.mark.parametrize("content_md5", [True, False], ids=["md5", "checksum-only"])
def test_the_fast_path_would_send_what_botocore_prepares(
    name: str, content_md5: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS itself cannot be reached from the tests: botocore prepares the requests (a
    ``before-send`` hook answers them, so nothing leaves), the fast path learns from the
    first, and the URL, Host, scope and payload signing it would use for the next key
    must be the ones botocore prepares for that key."""
    from botocore.awsrequest import AWSResponse

    from s3stow.config import load_settings
    from s3stow.store.base import WriteOptions
    from s3stow.store.capture import host_header
    from s3stow.store.checksums import compute
    from s3stow.store.s3 import S3Store
    from s3stow.store.wire import put_headers

    env, config, flags, dotted, expected = NO_SEND[name]
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    (tmp_path / "config").write_text(config)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    store = S3Store.from_settings(load_settings(env={}, flags=flags))
    prepared: list[tuple[str, dict[str, str]]] = []

    def answer(request: Any, **_: Any) -> AWSResponse:
        headers = {
            k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()
        }
        prepared.append((request.url, headers))
        return AWSResponse(request.url, 200, {"ETag": '"0"'}, _Empty())

    store.client.meta.events.register_last("before-send.s3", answer)
    bucket = f"t{'.dots' if dotted else ''}-{uuid.uuid4().hex[:12]}"
    body = b"x" * 10
    options = WriteOptions(content_type="text/plain", metadata={"a": "1"})
    md5 = "6f5902ac237024bdd0c176cb93063dc4" if content_md5 else None
    store.head_bucket(bucket)
    store.put_object(
        bucket, "k/one", body, digest=compute("crc32", body), options=options, content_md5=md5
    )
    fast = store.fast_path
    assert fast is not None
    assert fast.off_reason(bucket) is None
    assert store.custom_endpoint() is False  # AWS itself: ETags not checked on MD5s
    args = {
        **S3Store._write_args(options),
        "ChecksumAlgorithm": "CRC32",
        "ChecksumCRC32": compute("crc32", body).b64,  # type: ignore[union-attr]
        **({"ContentMD5": md5} if md5 else {}),
    }
    headers = put_headers(args)
    assert headers is not None
    for operation, key, call in (
        ("HeadBucket", None, lambda: store.client.head_bucket(Bucket=bucket)),
        (
            "PutObject",
            "k/two ü+x",
            lambda: store.client.put_object(Bucket=bucket, Key="k/two ü+x", Body=body, **args),
        ),
    ):
        ours = fast.describe(operation, bucket, key, {} if key is None else headers)
        call()
        url, sent = prepared[-1]
        scope = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/", sent["authorization"])
        assert scope is not None
        payload = sent["x-amz-content-sha256"]
        assert ours == {
            "url": url.split("?")[0],
            "host": host_header(url),
            "region": scope.group(1),
            "service": scope.group(2),
            "payload": payload if payload == "UNSIGNED-PAYLOAD" else "sha256",
        }
        assert re.search(expected, url), url  # the case reaches what it names
