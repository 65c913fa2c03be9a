"""Destination parsing, bucket names and key safety."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3stow.errors import ConfigError
from s3stow.keys import UnsafeKeyError, build_key, check_key, parse_target


def test_parse_target() -> None:
    assert parse_target("s3://bucket").prefix == ""
    assert parse_target("s3://bucket/a/b").prefix == "a/b/"
    assert parse_target("s3://bucket//a//b/").prefix == "a/b/"
    assert parse_target("s3://my.bucket-1/x").bucket == "my.bucket-1"


@pytest.mark.parametrize(
    "url",
    [
        "bucket/prefix",
        "s3://UPPER/x",
        "s3://ab",
        "s3://a_b/x",
        "s3://192.168.1.1/x",
        "s3://bucket/../x",
        "s3://-bad/x",
    ],
)
def test_bad_targets(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_target(url)


def test_build_key_normalises_nfc() -> None:
    decomposed = "cafe\u0301.txt"
    assert build_key("p/", decomposed) == "p/caf\u00e9.txt"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("a/../b", "'..'"),
        ("a//b", "empty"),
        ("/abs", "starts with"),
        ("a\nb", "control"),
        ("x" * 1025, "1025 bytes"),
    ],
)
def test_unsafe_keys(key: str, reason: str) -> None:
    with pytest.raises(UnsafeKeyError, match=reason):
        check_key(key)


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=5))
def test_accepted_keys_are_always_safe(segments: list[str]) -> None:
    rel = "/".join(segments)
    try:
        key = build_key("prefix/", rel)
    except UnsafeKeyError:
        return
    assert key.startswith("prefix/")
    parts = key.split("/")
    assert all(p not in ("", ".", "..") for p in parts)
    assert len(key.encode("utf-8", "surrogatepass")) <= 1024
    assert not any(ord(c) < 32 or ord(c) == 127 for c in key)
