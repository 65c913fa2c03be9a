"""``s3stow completion [SHELL]``: tab completion for bash, zsh, fish and PowerShell.

The script printed (or installed with ``--install``) is click's, through typer: the
shell calls s3stow back with ``_S3STOW_COMPLETE`` set and ``cli.app.main`` answers
with the commands, options (the global ones after the command name too) and paths
that fit what was typed.
"""

from __future__ import annotations

from typing import Annotated

import typer

from s3stow.cli.helptext import examples
from s3stow.errors import ConfigError

PROG = "s3stow"
COMPLETE_VAR = "_S3STOW_COMPLETE"
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")


def completion(
    shell: Annotated[
        str | None,
        typer.Argument(
            metavar="bash|zsh|fish|powershell",
            help="The shell (detected from the parent process when not given).",
        ),
    ] = None,
    install: Annotated[
        bool,
        typer.Option(
            "--install",
            help="Install it for your user (bash: ~/.bashrc, zsh: ~/.zfunc, fish: "
            "~/.config/fish/completions) instead of printing it.",
        ),
    ] = False,
) -> None:
    """Print the shell completion script for s3stow, or install it."""
    from typer._completion_shared import _get_shell_name, get_completion_script
    from typer._completion_shared import install as install_script

    name = (shell or _get_shell_name() or "").lower()
    if name not in SHELLS:
        raise ConfigError(
            f"cannot complete for shell {name or '(not detected)'!r}",
            hint="name it: s3stow completion bash|zsh|fish|powershell",
        )
    if not install:
        print(get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=name))
        return
    if name in ("powershell", "pwsh"):
        raise ConfigError(
            "--install does not edit a PowerShell profile",
            hint="add it yourself: s3stow completion powershell >> $PROFILE",
        )
    _, path = install_script(shell=name, prog_name=PROG, complete_var=COMPLETE_VAR)
    print(f"{name} completion installed in {path}; it takes effect in a new shell")


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            ("Complete in this bash session:", 'eval "$(s3stow completion bash)"'),
            (
                "Install it for every new zsh (or bash, fish) shell:",
                "s3stow completion zsh --install",
            ),
            ("PowerShell: add it to your profile:", "s3stow completion powershell >> $PROFILE"),
        )
    )(completion)
