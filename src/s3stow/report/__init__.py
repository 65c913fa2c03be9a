"""Reporting: observers of a run's events (progress display, JSON events,
status heartbeat) and the final summary.

Imports the base modules and the values of ``plan`` and ``store``; never ``transfer``
(the engine calls the observers), the tools or ``cli``.
"""

from s3stow.report.observer import Observer

__all__ = ["Observer"]
