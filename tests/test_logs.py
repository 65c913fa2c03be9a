"""Secrets never reach logs or output, even with --debug."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from s3stow.logs import configure_logging, redact

TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKENvalue1234567890"


def test_redact_shapes() -> None:
    samples = [
        f"{{'X-Amz-Security-Token': b'{TOKEN}'}}",
        f"Authorization: AWS4-HMAC-SHA256 Credential=AKIA/x, Signature={TOKEN}",
        f"https://b.s3.amazonaws.com/k?X-Amz-Signature={TOKEN}&X-Amz-Credential={TOKEN}",
        f"postgresql://user:{TOKEN}@db.example:5432/x",
        f"'x-amz-server-side-encryption-customer-key': b'{TOKEN}'",
        f"aws_session_token={TOKEN}",
    ]
    for sample in samples:
        assert TOKEN not in redact(sample), sample


def test_filter_applies_to_formatted_args() -> None:
    stream = io.StringIO()
    configure_logging(debug=True, stream=stream)
    logging.getLogger("botocore.endpoint").debug("headers: %s", {"X-Amz-Security-Token": TOKEN})
    logging.getLogger("s3stow").warning("url %s", f"postgresql://u:{TOKEN}@h/db")
    assert TOKEN not in stream.getvalue()
    assert "***" in stream.getvalue()
    configure_logging()


def test_debug_run_does_not_leak_session_token(cli, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    env = {"AWS_SESSION_TOKEN": TOKEN, "AWS_SECRET_ACCESS_KEY": "verysecretkeyvalue"}
    result = cli(
        "--debug", "upload", "src", f"s3://{bucket}/p", "--ledger", str(tmp_path / "l.db"), env=env
    )
    assert result.code == 0, result.output
    assert "X-Amz-Security-Token" in result.output or "x-amz-security-token" in result.output
    assert TOKEN not in result.output
    assert "verysecretkeyvalue" not in result.output
    assert TOKEN.encode() not in (tmp_path / "l.db").read_bytes()
