"""``python -m s3stow``: the program, as the ``s3stow`` console script runs it."""

from s3stow.cli.collector import hold_collector


def main() -> None:
    """Hold the collector before the command line's imports (typer and click: about
    30 collections, 8 ms of a one-file upload), then run ``cli.app.main``."""
    hold_collector()
    from s3stow.cli.app import main as run

    run()


if __name__ == "__main__":
    main()
