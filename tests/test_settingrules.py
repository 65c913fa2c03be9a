"""A setting's value is converted as pydantic's lax mode converted it (side by side), and
every refusal is worded by s3stow."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from s3stow.config import Settings, load_settings
from s3stow.errors import ConfigError
from s3stow.settingrules import Problem, Rule

# What a setting can arrive as: text (environment, YAML scalars, which the loader keeps
# as text), numbers and booleans (flags, library callers), lists and mappings (YAML).
WORDS = ["true", "False", "YES", "no", "On", "off", "t", "F", "y", "N", "1", "0", "2", ""]
NUMBER_TEXT = st.one_of(
    st.from_regex(r"\A[ \t]{0,2}[+-]?[0-9]{0,6}(\.[0-9]{0,3})?([eE][+-]?[0-9]{1,3})?[ \t]{0,2}\Z"),
    st.from_regex(r"\A[ ]?[+-]?[0-9]{1,3}(_[0-9]{3}){0,2}(\.0{0,2})?[ ]?\Z"),  # 1_000
)
ODD_TEXT = st.sampled_from(
    ["inf", "-inf", "nan", "NaN", "Infinity", "1__0", "_1", "8.", ".5", "0x10", "٣", "\t7\n"]
)
# Words without digits: whatever else a variable may hold (pydantic's reading of
# underscores in fractions, "1._5", and of non-ASCII spaces next to them, is not copied)
OTHER_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="0123456789_"), max_size=8
)
SCALARS = st.one_of(
    st.sampled_from(WORDS),
    NUMBER_TEXT,
    ODD_TEXT,
    OTHER_TEXT,
    st.integers(min_value=-(10**6), max_value=10**6),
    # (no setting takes a number past 2**63, where pydantic's whole numbers end)
    st.floats(min_value=-1e12, max_value=1e12),
    st.sampled_from([math.inf, -math.inf, math.nan]),
    st.booleans(),
    st.none(),
)


def _pydantic(kind: Any, value: Any) -> tuple[bool, Any]:
    try:
        return True, TypeAdapter(kind).validate_python(value)
    except ValidationError:
        return False, None


def _ours(rule: Rule, value: Any) -> tuple[bool, Any]:
    try:
        return True, rule.apply(value)
    except Problem:
        return False, None


def _same(a: tuple[bool, Any], b: tuple[bool, Any]) -> bool:
    if a[0] != b[0]:
        return False
    if isinstance(a[1], float) and isinstance(b[1], float) and math.isnan(a[1]):
        return math.isnan(b[1])
    return a == b and type(a[1]) is type(b[1])


@settings(max_examples=400, deadline=None)
@given(SCALARS)
@example("8.0")
@example(" 8 ")
@example(True)
@example(3.0)
def test_whole_numbers_as_pydantic_read_them(value: Any) -> None:
    assert _same(_ours(Rule("int"), value), _pydantic(int, value)), value


@settings(max_examples=400, deadline=None)
@given(SCALARS)
def test_numbers_as_pydantic_read_them(value: Any) -> None:
    assert _same(_ours(Rule("float"), value), _pydantic(float, value)), value


@settings(max_examples=400, deadline=None)
@given(SCALARS)
def test_booleans_as_pydantic_read_them(value: Any) -> None:
    assert _same(_ours(Rule("bool"), value), _pydantic(bool, value)), value


@settings(max_examples=200, deadline=None)
@given(st.one_of(SCALARS, st.lists(st.one_of(st.text(max_size=3), st.integers()), max_size=3)))
def test_text_lists_and_choices_as_pydantic_read_them(value: Any) -> None:
    assert _same(_ours(Rule("str"), value), _pydantic(str, value)), value
    assert _same(_ours(Rule("str", optional=True), value), _pydantic(str | None, value))
    assert _same(_ours(Rule("list"), value), _pydantic(list[str], value)), value
    choice = Rule("choice", choices=("on", "off"))
    assert _same(_ours(choice, value), _pydantic(Literal["on", "off"], value)), value


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.one_of(st.text(max_size=3), st.integers()),
        st.one_of(st.text(max_size=3), st.integers(), st.lists(st.text(max_size=2), max_size=2)),
        max_size=3,
    )
)
def test_mappings_as_pydantic_read_them(value: dict[Any, Any]) -> None:
    assert _same(_ours(Rule("dict"), value), _pydantic(dict[str, str], value)), value
    assert _same(_ours(Rule("dict_list"), value), _pydantic(dict[str, list[str]], value))


@settings(max_examples=300, deadline=None)
@given(SCALARS)
def test_bounds_as_pydantic_checked_them(value: Any) -> None:
    from typing import Annotated

    from pydantic import Field

    for rule, kind in (
        (Rule("int", ge=1, le=1024), Annotated[int, Field(ge=1, le=1024)]),
        (Rule("float", gt=0), Annotated[float, Field(gt=0)]),
        (Rule("float", ge=0), Annotated[float, Field(ge=0)]),
        (Rule("int", optional=True, ge=0), Annotated[int, Field(ge=0)] | None),
    ):
        assert _same(_ours(rule, value), _pydantic(kind, value)), (rule, value)


def test_paths_from_text_or_paths_only() -> None:
    rule = Rule("path", optional=True)
    assert rule.apply("a/b") == Path("a/b")
    assert rule.apply(Path("c")) == Path("c")
    assert rule.apply(None) is None
    with pytest.raises(Problem, match="1 is not a path"):
        rule.apply(1)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"S3STOW_VERIFY_SSL": "maybe"}, "'maybe' is not true or false (write true, false, yes"),
        ({"S3STOW_MAX_ATTEMPTS": "2.5"}, "'2.5' is not a whole number"),
        ({"S3STOW_READ_TIMEOUT": "soon"}, "'soon' is not a number"),
        ({"S3STOW_READ_TIMEOUT": "0"}, "'0' is out of range: it must be more than 0"),
        ({"S3STOW_CONCURRENCY": "2000"}, "2000 is out of range: it must be at most 1024"),
        ({"S3STOW_MEMORY_LIMIT": "1MiB"}, "1048576 is out of range: it must be at least 16777216"),
        ({"S3STOW_ETAG_CHECK": "ON"}, "'ON' is not one of: auto, on, off"),
        ({"S3STOW_SSE": "kms"}, "'kms' is not one of: AES256, aws:kms"),
        ({"S3STOW_EXPECTED_BUCKET_OWNER": "12345"}, "'12345' is not a 12-digit AWS account id"),
        ({"S3STOW_EXPECTED_BUCKET_OWNER": "123456789012\n"}, "is not a 12-digit AWS account id"),
        ({"S3STOW_CUSTOM_TIMESTAMP": "2025-07-29"}, "is not a timestamp YYYYMMDD_HHMM"),
        ({"S3STOW_PART_SIZE": "1MiB"}, "part size must be between 5 MiB and 5 GiB"),
        ({"S3STOW_METADATA": "source=x"}, "metadata name 'source' is s3stow's own"),
        ({"S3STOW_ENDPOINT_URL": "s3.example.com"}, "has no scheme: write http://s3.example"),
    ],
)
def test_a_bad_value_is_named_with_its_origin(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    text = str(info.value)
    assert message in text, text
    name = next(iter(env))
    assert f"from environment variable {name}" in text
    assert "pydantic" not in text.lower()
    assert "Value error" not in text


def test_every_problem_is_named_at_once_in_field_order() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={"S3STOW_CONCURRENCY": "0", "S3STOW_ETAG_CHECK": "x"})
    text = str(info.value)
    assert text.index("'etag_check'") < text.index("'concurrency'")


def test_settings_made_directly_are_checked_and_copies_are_checked_again() -> None:
    with pytest.raises(ConfigError, match="setting 'concurrency': 0 is out of range"):
        Settings(concurrency=0)
    settings = Settings(concurrency="8", include=("a",), status_json="s.json")  # type: ignore[arg-type]
    assert settings.concurrency == 8
    assert settings.include == ["a"]
    assert settings.status_json == Path("s.json")
    assert settings.replace(force=True).force
    assert not settings.force
    with pytest.raises(ConfigError, match="'limit'"):
        settings.replace(limit=-1)
    with pytest.raises(TypeError):
        Settings(concurency=8)  # type: ignore[call-arg]
    with pytest.raises(AttributeError):
        settings.force = True  # type: ignore[misc]


def test_dump_copies_and_json_form() -> None:
    settings = Settings(status_json=Path("s.json"), include=["*.txt"])
    data = settings.dump()
    assert data["status_json"] == Path("s.json")
    data["include"].append("x")
    data["folder_types"]["logs"].append(".x")
    assert settings.include == ["*.txt"]
    assert ".x" not in settings.folder_types["logs"]
    assert settings.dump(json=True)["status_json"] == "s.json"
    assert "ledger" not in settings.dump(exclude={"ledger"})
    assert Settings(**settings.dump()) == settings
