"""Secrets never reach logs or output, even with --debug."""

from __future__ import annotations

import io
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from s3stow.config import load_settings
from s3stow.logs import (
    REDACTED,
    RedactingFilter,
    configure_logging,
    flush_warnings,
    redact,
    register_secret,
    warn_each,
)
from s3stow.models import Status
from s3stow.plan.keys import parse_target
from s3stow.transfer.engine import Uploader

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


def test_a_registered_secret_is_scrubbed_in_a_shape_no_pattern_knows() -> None:
    secret = f"plain{uuid.uuid4().hex}"
    assert redact(f"value={secret[:-1]}") != REDACTED  # not a registered literal
    register_secret(secret)
    register_secret("ab")  # too short to scrub safely: ignored
    assert redact(f"stored {secret}, twice: {secret}.") == f"stored {REDACTED}, twice: {REDACTED}."
    assert redact("abc") == "abc"


def test_a_secret_of_four_characters_is_the_shortest_scrubbed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four characters are enough to register (a short database password is still a
    secret); three are not (they would scrub ordinary words). The list is this test's
    own, so the short value cannot scrub another test's output."""
    from s3stow import logs

    monkeypatch.setattr(logs, "_registered", [])
    register_secret("q~Z")
    register_secret("q~Z!")
    assert logs._registered == ["q~Z!"]
    assert redact("password q~Z! and q~Z") == f"password {REDACTED} and q~Z"


@pytest.mark.parametrize("source", ["environment", "environment-botocore", "keyring"])
def test_the_credentials_a_run_signs_with_are_scrubbed_in_any_shape(
    s3_server: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """The secret key and session token are registered where the store loads them (the
    fast path's environment keys, botocore's chain, the OS keyring), so even a bare
    value in a log line is scrubbed."""
    secret, token = f"Secret{uuid.uuid4().hex}", f"Token{uuid.uuid4().hex}"
    flags: dict[str, object] = {"endpoint_url": s3_server.endpoint_url}
    previous = None
    if source == "keyring":
        import keyring

        from tests.test_library import _MemoryKeyring

        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.delenv(name)
        entries = {"aws_access_key_id": "kr", "aws_secret_access_key": secret}
        entries["aws_session_token"] = token
        previous = keyring.get_keyring()
        keyring.set_keyring(_MemoryKeyring({("s", k): v for k, v in entries.items()}).backend)
        flags.update(auth="keyring", keyring_service="s")
    else:
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        monkeypatch.setenv("AWS_SESSION_TOKEN", token)
        flags["fast_path"] = source == "environment"
    path = tmp_path / "a.txt"
    path.write_text("x")
    stream = io.StringIO()
    try:
        uploader = Uploader(
            load_settings(env={}, flags=flags), default_target=parse_target(f"s3://{bucket}/p")
        )
        assert uploader.upload_file(path).status == Status.DONE
        configure_logging(stream=stream)
        logging.getLogger("s3stow.test").warning("bare: %s %s", secret, token)
    finally:
        configure_logging()
        if previous is not None:
            import keyring

            keyring.set_keyring(previous)
    assert f"bare: {REDACTED} {REDACTED}" in stream.getvalue()


def test_a_traceback_is_scrubbed_and_a_formatted_message_is_not_formatted_twice() -> None:
    """The filter alone (pytest's own log handlers would format the record first)."""
    try:
        raise RuntimeError(f"connect postgresql://u:{TOKEN}@db/x failed")
    except RuntimeError:
        info = sys.exc_info()
    record = logging.LogRecord(
        "s3stow.test", logging.ERROR, __file__, 1, "upload %s: 100%% failed", ("a.txt",), info
    )
    assert RedactingFilter().filter(record)
    out = logging.Formatter("%(message)s").format(record)
    assert TOKEN not in out
    assert out.startswith("upload a.txt: 100% failed\nTraceback")
    assert out.endswith(f"RuntimeError: connect postgresql://u:{REDACTED}@db/x failed")


def test_a_warning_about_many_items_is_shown_once_then_counted_with_examples() -> None:
    """``warn_each``: the first warning of a kind as it happens, then one line with the
    count and three examples; with ``-v`` every one as it happens and no count."""
    names = ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    log = logging.getLogger("s3stow.test")

    def warn_all() -> None:
        for name in names:
            warn_each(
                log,
                "no-stamp",
                "%s has no timestamp: %s",
                name,
                "its mtime is used",
                example=name,
                many="files without a timestamp",
            )
        flush_warnings()

    try:
        configure_logging(stream=io.StringIO())
        flush_warnings()  # what other tests left counted
        stream = io.StringIO()
        configure_logging(stream=stream)
        warn_all()
        lines = [line.split(" ", 2)[2] for line in stream.getvalue().splitlines()]
        assert lines == [
            "WARNING s3stow.test: a.jpg has no timestamp: its mtime is used",
            "WARNING s3stow: 4 files without a timestamp"
            " (e.g. a.jpg, b.jpg, c.jpg; -v lists every one)",
        ]
        stream = io.StringIO()
        configure_logging(verbose=1, stream=stream)
        warn_all()
        lines = [line.split(" ", 2)[2] for line in stream.getvalue().splitlines()]
        assert lines == [
            f"WARNING s3stow.test: {name} has no timestamp: its mtime is used" for name in names
        ]
    finally:
        configure_logging()


def test_the_log_follows_sys_stderr_as_it_is_at_each_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a stream the handler writes to ``sys.stderr`` as it is then (a live
    progress display swaps it to print log lines above its frame)."""
    try:
        configure_logging()
        swapped = io.StringIO()
        monkeypatch.setattr(sys, "stderr", swapped)
        logging.getLogger("s3stow.test").warning("after the swap")
    finally:
        configure_logging()
    assert swapped.getvalue().endswith("WARNING s3stow.test: after the swap\n")


@pytest.mark.parametrize(
    ("flags", "shown"),
    [
        ({}, ["WARNING"]),
        ({"quiet": True}, []),
        ({"verbose": 1}, ["INFO", "WARNING"]),
        ({"verbose": 2}, ["DEBUG", "INFO", "WARNING"]),  # -vv: debug logs
        ({"verbose": 3}, ["DEBUG", "INFO", "WARNING"]),
        ({"debug": True}, ["DEBUG", "INFO", "WARNING"]),
    ],
)
def test_the_log_level_follows_the_output_flags(flags: dict[str, Any], shown: list[str]) -> None:
    try:
        stream = io.StringIO()
        configure_logging(stream=stream, **flags)
        log = logging.getLogger("s3stow.test")
        log.debug("d")
        log.info("i")
        log.warning("w")
        assert [line.split(" ")[2] for line in stream.getvalue().splitlines()] == shown
    finally:
        configure_logging()


@pytest.mark.parametrize("library", ["botocore", "boto3", "urllib3", "s3transfer"])
def test_the_aws_libraries_debug_logs_only_with_debug(library: str) -> None:
    """``-vv`` shows s3stow's debug logs, not the AWS libraries' (whose debug output
    is vast); ``--debug`` shows theirs too (still redacted)."""
    noisy = logging.getLogger(f"{library}.inner")
    try:
        for flags, shown in (({"verbose": 2}, ["w"]), ({"debug": True}, ["d", "w"])):
            logging.getLogger(library).setLevel(logging.NOTSET)  # as a new process has it
            stream = io.StringIO()
            configure_logging(stream=stream, **flags)
            noisy.debug("d")
            noisy.warning("w")
            assert [line.rsplit(" ", 1)[1] for line in stream.getvalue().splitlines()] == shown
    finally:
        configure_logging()


def test_a_file_name_cannot_forge_a_log_line(cli, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``-v`` logs each path it skips with ``%s``: a FIFO named ``p\\nERROR ...`` wrote
    a second, forged log line, and ``\\x1b[...`` recoloured the terminal."""
    import os

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    os.mkfifo(src / "p\n2026-01-01 00:00:00,000 ERROR forged")
    os.mkfifo(src / "q\x1b[2J")
    result = cli("-v", "upload", "src", f"s3://{bucket}/p", "--ledger", str(tmp_path / "l.db"))
    assert result.code == 0, result.output
    assert "skipped src/p\\n2026-01-01 00:00:00,000 ERROR forged: not a regular file" in (
        result.stderr
    )
    assert "skipped src/q\\x1b[2J: not a regular file" in result.stderr
    assert "\n2026-01-01 00:00:00,000 ERROR forged" not in result.output
    assert "\x1b" not in result.output
