"""Configuration precedence and rejection of bad configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3stow.config import load_settings
from s3stow.errors import ConfigError, ExitCode
from s3stow.units import parse_concurrency, parse_size
from tests.conftest import make_tree


def test_defaults() -> None:
    settings = load_settings(env={})
    assert settings.concurrency == 16
    assert settings.checksum == "crc64nvme"
    assert settings.part_size is None


def test_precedence_file_then_env_then_flag(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("concurrency: 4\nchecksum: crc32\nstorage_class: STANDARD_IA\n")
    from_file = load_settings(config_file=config, env={})
    assert (from_file.concurrency, from_file.checksum) == (4, "crc32")
    from_env = load_settings(config_file=config, env={"S3STOW_CONCURRENCY": "8"})
    assert from_env.concurrency == 8
    assert from_env.checksum == "crc32"
    from_flag = load_settings(
        config_file=config,
        env={"S3STOW_CONCURRENCY": "8"},
        flags={"concurrency": 12, "checksum": None},
    )
    assert from_flag.concurrency == 12
    assert from_flag.checksum == "crc32"  # a flag that was not given does not override
    assert from_flag.storage_class == "STANDARD_IA"


def test_config_file_from_env_var(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("part-size: 64MiB\n")
    settings = load_settings(env={"S3STOW_CONFIG": str(config)})
    assert settings.part_size == 64 * 1024 * 1024


def test_unknown_key_names_key_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("concurrency: 4\nconcurency: 8\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=config, env={})
    assert "'concurency'" in str(info.value)
    assert "line 2" in str(info.value)
    assert info.value.exit_code == ExitCode.USAGE
    assert info.value.hint == "did you mean 'concurrency'?"  # not the list of every key
    config.write_text("xyzzy: 1\n")
    with pytest.raises(ConfigError) as unlike:
        load_settings(config_file=config, env={})
    assert unlike.value.hint == "the README's configuration table lists every setting"


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("dry_run", "maybe", "'maybe' is not true or false (write true, false, yes, no"),
        ("limit", "three", "'three' is not a whole number"),
        ("status_interval", "soon", "'soon' is not a number"),
        ("concurrency", "0", "0 is out of range: it must be at least 1"),
        ("checksum", "md5", "'md5' is not one of: crc64nvme, crc32c, crc32, sha256, none"),
        ("expected_bucket_owner", "me", "'me' is not a 12-digit AWS account id"),
        ("custom_timestamp", "2025", "'2025' is not a timestamp YYYYMMDD_HHMM"),
    ],
)
def test_validation_messages_are_in_the_tools_words(key: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={f"S3STOW_{key.upper()}": value})
    message = str(info.value)
    assert words in message
    assert "Input should" not in message


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("concurrency", "-3", "concurrency"),
        ("concurrency", "lots", "not a concurrency"),
        ("part_size", "1MiB", "between 5 MiB and 5 GiB"),
        ("part_size", "6GiB", "between 5 MiB and 5 GiB"),
        ("checksum", "md5", "checksum"),
        ("status_interval", "0", "status_interval"),
    ],
)
def test_bad_values_are_rejected(key: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={f"S3STOW_{key.upper()}": value})
    message = str(info.value)
    assert key in message
    assert f"S3STOW_{key.upper()}" in message
    assert words in message


def test_wrong_type_in_file(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("force: [1, 2]\n")
    with pytest.raises(ConfigError, match="'force'"):
        load_settings(config_file=config, env={})


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("concurrency: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(config_file=config, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "nope.yaml", env={})


def test_a_yaml_mistake_is_named_with_its_place_and_the_fix(tmp_path: Path) -> None:
    """A tab indent (the classic mistake): its line and column, PyYAML's problem in one
    line (not its excerpt of the text), and how to write the file."""
    config = tmp_path / "c.yaml"
    config.write_text("concurrency: 4\n\tpart_size: 5MiB\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=config, env={})
    assert caught.value.message == (
        f"config file {config} is not valid YAML at line 2, column 1: "
        "found character '\\t' that cannot start any token"
    )
    assert "not tabs" in (caught.value.hint or "")
    config.write_text("- concurrency\n- 4\n")
    with pytest.raises(ConfigError, match="must be a mapping") as caught:
        load_settings(config_file=config, env={})
    assert "setting: value" in (caught.value.hint or "")


def test_yaml_values_are_read_as_the_readme_writes_them(tmp_path: Path) -> None:
    """Plain YAML scalars are text, validated as a variable's are: YAML 1.1 made
    ``etag_check: on`` a boolean ("True is not one of: auto, on, off"), a date a date
    ("2025-07-29 is not text") and ``20250729_1615`` the number 202507291615."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "etag_check: on\nnewer_than: 2025-07-29\ncustom_timestamp: 20250729_1615\n"
        "metadata:\n  when: 2025-07-29\n  count: 5\ndry_run: yes\nconcurrency: 4\n"
        "include: ['*.xml', logs/**]\nmin_size: 1KiB\nstatus_json: ~\n"
    )
    loaded = load_settings(config_file=config, env={})
    assert (loaded.etag_check, loaded.newer_than) == ("on", "2025-07-29")
    assert loaded.custom_timestamp == "20250729_1615"
    assert loaded.metadata == {"when": "2025-07-29", "count": "5"}
    assert (loaded.dry_run, loaded.concurrency, loaded.min_size) == (True, 4, 1024)
    assert (loaded.include, loaded.status_json) == (["*.xml", "logs/**"], None)
    config.write_text("etag_check: off\n")
    assert load_settings(config_file=config, env={}).etag_check == "off"


def test_cli_an_impossible_date_names_its_place_and_exits_2(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``older_than: 2025-13-45`` in the file ended the command with "unexpected
    ValueError: month must be in 1..12" (exit 3); a wrong age or date from the file or
    a variable did not say where it came from."""
    (tmp_path / "src").mkdir()
    config = tmp_path / "c.yaml"
    config.write_text("concurrency: 4\nolder_than: 2025-13-45\n")
    result = cli("--config", str(config), "upload", "src", "s3://some-bucket/p")
    assert result.code == 2, result.output
    assert "setting 'older_than' from" in result.stderr
    assert "c.yaml, line 2: '2025-13-45' is neither an age" in result.stderr
    assert "unexpected" not in result.output
    variable = cli("upload", "src", "s3://some-bucket/p", env={"S3STOW_NEWER_THAN": "soon"})
    assert variable.code == 2, variable.output
    assert "from environment variable S3STOW_NEWER_THAN: 'soon'" in variable.stderr


def test_metadata_from_env() -> None:
    settings = load_settings(env={"S3STOW_METADATA": "team=data,Env=prod"})
    assert settings.metadata == {"team": "data", "env": "prod"}


def test_units() -> None:
    assert parse_size("8MiB") == 8 * 1024**2
    assert parse_size("1.5GiB") == int(1.5 * 1024**3)
    assert parse_size("64MB") == 64_000_000
    assert parse_size("123") == 123
    with pytest.raises(ValueError, match="not a size"):
        parse_size("8 parsecs")
    assert parse_concurrency("cpu*4") >= 4
    assert parse_concurrency("7") == 7


def test_cli_bad_config_exits_2_without_traceback(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "c.yaml"
    config.write_text("concurrency: 4\nbogus_key: 1\n")
    (tmp_path / "src").mkdir()
    result = cli("--config", str(config), "upload", "src", "s3://some-bucket/p")
    assert result.code == 2
    assert "bogus_key" in result.stderr
    assert "line 2" in result.stderr
    assert "Traceback" not in result.output


def test_cli_bad_flag_value_exits_2(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "src").mkdir()
    result = cli("upload", "src", "s3://some-bucket/p", "--part-size", "1MiB")
    assert result.code == 2
    assert "part_size" in result.stderr
    assert "--part-size" in result.stderr
    assert "Traceback" not in result.output
    number = cli("upload", "src", "s3://some-bucket/p", "--limit", "three")
    assert number.code == 2
    assert "Invalid value for '--limit': 'three' is not a whole number" in number.stderr


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "concurrency",
                "part_size",
                "checksum",
                "limit",
                "status_interval",
                "force",
                "metadata",
                "layout",
            ]
        ),
        st.one_of(st.text(max_size=12), st.integers(-(10**12), 10**12), st.booleans(), st.none()),
        max_size=4,
    )
)
def test_any_environment_either_loads_or_fails_cleanly(values: dict[str, object]) -> None:
    env = {f"S3STOW_{k.upper()}": str(v) for k, v in values.items()}
    error: ConfigError | None = None
    try:
        loaded = load_settings(env=env)
    except ConfigError as exc:
        error = exc
    if error is not None:
        assert error.exit_code == ExitCode.USAGE
        assert "S3STOW_" in str(error)  # names where the bad value came from
        return
    assert loaded.concurrency >= 1
    assert loaded.part_size is None or 5 * 1024**2 <= loaded.part_size <= 5 * 1024**3


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ({"flags": {"endpoint_url": ""}}, ["option --endpoint-url", "empty"]),
        ({"env": {"S3STOW_ENDPOINT_URL": ""}}, ["S3STOW_ENDPOINT_URL", "empty"]),
        ({"env": {"S3STOW_ENDPOINT_URL": "  "}}, ["S3STOW_ENDPOINT_URL", "empty"]),
        (
            {"flags": {"endpoint_url": "127.0.0.1:9"}},
            ["no scheme", "http://127.0.0.1:9", "https://127.0.0.1:9"],
        ),
        ({"flags": {"endpoint_url": "localhost:9000"}}, ["no scheme", "http://localhost:9000"]),
    ],
)
def test_an_empty_or_schemeless_endpoint_is_a_usage_error(
    source: dict[str, dict[str, str]], words: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env=source.get("env", {}), flags=source.get("flags"))
    assert info.value.exit_code == ExitCode.USAGE
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    "source",
    [{"flags": {"ledger": ""}}, {"env": {"S3STOW_LEDGER": " "}}],
)
def test_an_empty_ledger_path_is_a_usage_error_not_the_default_ledger(
    source: dict[str, dict[str, str]],
) -> None:
    # an unset shell variable: the run used (and skipped files by) the default ledger
    with pytest.raises(ConfigError) as info:
        load_settings(env=source.get("env", {}), flags=source.get("flags"))
    assert info.value.exit_code == ExitCode.USAGE
    assert "the ledger path is empty" in str(info.value)


def test_addressing_is_left_to_the_aws_profile_unless_a_flag_says() -> None:
    assert load_settings(env={}).path_style is None
    assert load_settings(env={}, flags={"path_style": False}).path_style is False
    assert load_settings(env={"S3STOW_PATH_STYLE": "true"}).path_style is True
    assert (
        load_settings(env={}, flags={"endpoint_url": "HTTPS://h:9"}).endpoint_url == "HTTPS://h:9"
    )


def test_headers_s3_cannot_take_are_refused(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A metadata value with an accent or a line break, a name with a space, s3stow's own
    names and a Content-Type with a line break failed every file at send time (exit 1,
    after retrying a "transient" HTTPClientError); they are refused before anything is
    sent, naming the value (exit 2). Printable ASCII goes through."""
    make_tree(tmp_path / "src", {"a.txt": 3})
    target = f"s3://{bucket}/p"
    for extra, words in (
        (("--metadata", "note=caf\u00e9"), "printable ASCII only"),
        (("--metadata", "note=line1\nline2"), "printable ASCII only"),
        (("--metadata", "bad name=v"), "cannot be an HTTP header"),
        (("--metadata", "mtime=2020-01-01"), "s3stow's own"),
        (("--content-type", "text/plain\nX-Injected: 1"), "cannot be a Content-Type"),
    ):
        result = cli("upload", "src", target, "--ledger", "l.db", *extra)
        assert result.code == 2, (extra, result.output)
        assert words in result.stderr
        assert "from option --" in result.stderr
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    fine = ("--metadata", "note=a b: c", "--content-type", "text/plain; charset=utf-8")
    assert cli("upload", "src", target, "--ledger", "l.db", *fine).code == 0
    head = s3.head_object(Bucket=bucket, Key="p/a.txt")
    assert head["Metadata"]["note"] == "a b: c"
    assert head["ContentType"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    "text",
    ["concurrency: 4\nchecksum: sha256\nconcurrency: 64\n", "part-size: 8MiB\npart_size: 64MiB\n"],
)
def test_a_setting_given_twice_in_the_config_file_names_both_lines(
    tmp_path: Path, text: str
) -> None:
    # PyYAML kept the last value silently (and '-' and '_' spellings folded into one);
    # two values on the command line are an error for the same reason
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=config, env={})
    assert info.value.exit_code == ExitCode.USAGE
    last = text.count("\n")
    assert f"is given twice in {config}, lines 1 and {last}" in str(info.value)


def test_a_setting_left_without_a_value_is_named_in_yaml_words(tmp_path: Path) -> None:
    # "None is not a whole number": Python's word for what the user left empty
    config = tmp_path / "c.yaml"
    config.write_text("concurrency:\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=config, env={})
    assert "'concurrency' from " in str(info.value)
    assert "line 1: null (no value) is not a whole number" in str(info.value)
    assert "None" not in str(info.value)
