"""The README's configuration table covers every setting, with its env variable."""

from __future__ import annotations

from pathlib import Path

from s3stow.config import SETTING_NAMES

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme_table() -> None:
    for name in SETTING_NAMES:
        row = f"| `{name}` | `S3STOW_{name.upper()}` |"
        assert row in README, f"README configuration table lacks {name}"


def test_readme_names_the_test_command() -> None:
    assert "make test" in README
    assert "make demo" in README
