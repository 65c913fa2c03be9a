"""The command-line interface (the only package that imports typer).

``app`` holds the Typer application, the global options and ``main`` (error
to exit-code mapping); each command lives in its own module.
"""
