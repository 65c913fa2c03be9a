"""Reporting: observers of a run's events (progress display, JSON events,
status heartbeat) and the final summary."""

from s3stow.report.observer import Observer

__all__ = ["Observer"]
