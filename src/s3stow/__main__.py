"""``python -m s3stow``: the program, as the ``s3stow`` console script runs it."""

import signal
import sys

from s3stow.cli.collector import hold_collector


def main() -> None:
    """Hold the collector before the command line's imports (typer and click: about
    30 collections, 8 ms of a one-file upload), then run ``cli.app.main``.

    Ctrl+C or SIGTERM before a command installs its own handlers (the imports, the
    settings, the ledger opened) is "interrupted", exit 130, as it is later: Ctrl+C
    printed a traceback from whatever import it landed in, and SIGTERM killed the
    process without a word (143). An inherited SIG_IGN is replaced, as the run's
    handlers replace it."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        hold_collector()
        from s3stow.cli.app import main as run

        run()
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr, flush=True)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
