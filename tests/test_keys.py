"""Destination parsing, bucket names and key safety."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3stow.errors import ConfigError, ExitCode
from s3stow.models import Target
from s3stow.plan.keys import (
    UnsafeKeyError,
    build_key,
    check_key,
    checked_target,
    normalise_prefix,
    parse_target,
)


def test_parse_target() -> None:
    assert parse_target("s3://bucket").prefix == ""
    assert parse_target("s3://bucket/a/b").prefix == "a/b/"
    assert parse_target("s3://bucket/a/b/").prefix == "a/b/"
    assert parse_target("s3://bucket/").prefix == ""


@pytest.mark.parametrize(
    "url", ["s3://bucket//a//b/", "s3://bucket/a//b", "s3://bucket//a", "s3://bucket/a//"]
)
def test_an_empty_prefix_segment_is_refused_not_dropped(url: str) -> None:
    """``s3://b/a//b`` was taken as ``a/b/`` silently: upload, restore and verify
    then used other keys than the ones named (S3 keeps ``a//b/x`` apart)."""
    with pytest.raises(ConfigError, match=r"empty segment|starts with /") as caught:
        parse_target(url)
    assert f"the prefix of {url!r}" in caught.value.message
    assert caught.value.hint.startswith("write s3://bucket/a/")
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


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("a//b", "has an empty segment (//)"),
        ("/a", "starts with /"),
        ("a//", "has an empty segment (//)"),
        ("a\\\\b", "has an empty segment (//)"),
        ("a/../b", "has a '..' segment"),
        ("./a", "has a '.' segment"),
    ],
)
def test_every_prefix_follows_the_url_rule(text: str, refused: str) -> None:
    """``normalise_prefix`` dropped empty segments and a leading ``/`` silently where
    ``parse_target`` refused them: ``retry --prefix``, ``bucket --prefix``, a library
    ``Target`` and ``PREFIX`` now go through the one function, with the same verdict."""
    with pytest.raises(ConfigError) as url:
        parse_target(f"s3://bucket/{text}")
    with pytest.raises(ConfigError) as option:
        normalise_prefix(text, named=f"--prefix {text!r}", write="--prefix {}")
    with pytest.raises(ConfigError) as target:
        checked_target(Target("bucket", text))
    for caught in (url, option, target):
        assert refused in caught.value.message
        assert caught.value.exit_code == ExitCode.USAGE
    assert option.value.message.startswith(f"--prefix {text!r} ")
    assert "--prefix " in str(option.value.hint)
    assert "Target('bucket', " in str(target.value.hint)


@pytest.mark.parametrize(
    ("text", "prefix"), [("", ""), ("/", ""), ("a", "a/"), ("a/b/", "a/b/"), ("a\\b", "a/b/")]
)
def test_a_prefix_is_normalised_alike_everywhere(text: str, prefix: str) -> None:
    assert normalise_prefix(text) == prefix
    assert checked_target(Target("bucket", text)) == Target("bucket", prefix)
    if text != "/":  # s3://bucket// : the bucket's root, as before
        assert parse_target(f"s3://bucket/{text}").prefix == prefix


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
        ("p/a\\..\\b", "between backslashes"),  # a Windows reader climbs out
        ("C:\\Windows\\x", "Windows absolute"),
        ("\\\\server\\share\\x", "Windows absolute"),
    ],
)
def test_unsafe_keys(key: str, reason: str) -> None:
    with pytest.raises(UnsafeKeyError, match=reason):
        check_key(key)


def test_a_backslash_is_an_ordinary_key_character() -> None:
    """A POSIX name may hold one: the sanitiser keeps it (never a separator)."""
    from s3stow.plan.templates import sanitise_key

    assert sanitise_key("p/back\\slash.txt", prefix="p/") == "p/back\\slash.txt"
    assert sanitise_key("p//a\\b/./c", prefix="p/") == "p/a\\b/c"


def test_a_backslash_does_not_make_a_key_local() -> None:
    """A failure recorded under an object key with a backslash is retried; only the
    absolute paths of files that never had a key are ``local_key`` s."""
    from s3stow.plan.keys import is_local_key

    assert not is_local_key("p/back\\slash.txt")
    assert is_local_key("/home/u/src/bad.txt")
    assert is_local_key("C:\\Users\\u\\bad.txt")
    assert is_local_key("\\\\server\\share\\bad.txt")


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
