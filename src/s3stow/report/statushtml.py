"""The HTML of the status page (``s3stow status FILE --serve``): a run's heartbeat as one page.

``render_main`` turns the ``--status-json`` heartbeat (and, with a ledger, the latest
runs and the run's failures) into the page's content: totals as cards named for the
command (``fields_of``: a restore's ``restored``), the groups with their progress,
an inline SVG chart of throughput over time (``throughput_chart``, from the
heartbeat's ``history``), the failures and the recent runs; every value escaped.
``render_page`` wraps it in the document: inline CSS, and six lines of inline script
(``page_script``, its hash allowed by the server's Content-Security-Policy) that fetch
the content again every ``refresh`` seconds (without script, a meta refresh does).
Nothing comes from the internet and there is no build step. The server is in
``statuspage.py``.
"""

from __future__ import annotations

import html
import itertools
import time
from pathlib import Path
from typing import Any

from s3stow.report.status import Fields, fields_of
from s3stow.units import format_duration, format_size

_ENDED = frozenset({"done", "failed", "interrupted", "stopped"})

_SCRIPT = """
setInterval(async () => {
  try {
    const answer = await fetch("?part=main", {cache: "no-store"});
    if (answer.ok) document.querySelector("main").innerHTML = await answer.text();
  } catch (error) { /* the run or the server stopped: keep the last view */ }
}, REFRESH_MS);
"""

_STYLE = """
:root { color-scheme: light dark; --fg: #1d2330; --muted: #667085; --line: #d0d5dd;
  --card: #f8f9fb; --ok: #1a7f37; --bad: #c62828; --bar: #2f6fde; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8ee; --muted: #98a2b3;
  --line: #344054; --card: #1a1f2b; --ok: #4ac26b; --bad: #ff6b6b; --bar: #5b8def; } }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  margin: 0 auto; padding: 1.2rem 1.5rem; max-width: 72rem; }
h1 { font-size: 1.25rem; margin: 0 0 .2rem; } h2 { font-size: 1rem; margin: 1.4rem 0 .5rem; }
.sub { color: var(--muted); margin-bottom: 1rem; word-break: break-all; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(10rem, 1fr)); gap: .6rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: .5rem;
  padding: .6rem .8rem; }
.card b { display: block; font-size: 1.35rem; font-variant-numeric: tabular-nums; }
.card span { color: var(--muted); font-size: .85rem; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: .85rem; }
td.n, th.n { text-align: right; }
.bar { background: var(--line); border-radius: .25rem; height: .55rem; min-width: 6rem; }
.bar i { display: block; height: 100%; border-radius: .25rem; background: var(--bar); }
.bad { color: var(--bad); } .ok { color: var(--ok); } .muted { color: var(--muted); }
.path { word-break: break-all; }
svg { width: 100%; height: auto; background: var(--card); border: 1px solid var(--line);
  border-radius: .5rem; }
svg .area { fill: var(--bar); fill-opacity: .18; stroke: var(--bar); stroke-width: 1.5; }
svg text { fill: var(--muted); font-size: 11px; }
svg line { stroke: var(--line); }
"""


def page_script(refresh: float) -> str:
    """The inline script, fetching the content again every ``refresh`` seconds."""
    return _SCRIPT.replace("REFRESH_MS", str(int(refresh * 1000)))


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(seconds: float | None) -> str:
    if not seconds:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(seconds)))


def rates(history: list[list[float]]) -> list[tuple[float, float]]:
    """``(time, bytes per second)`` between consecutive heartbeat samples."""
    points = []
    for (t0, b0, *_), (t1, b1, *_) in itertools.pairwise(history):
        if t1 > t0:
            points.append((float(t1), max(0.0, (b1 - b0) / (t1 - t0))))
    return points


def recent_rate(history: list[list[float]], *, window: float = 30.0) -> float:
    """Bytes per second over the last ``window`` seconds of samples."""
    if len(history) < 2:
        return 0.0
    last_t, last_b = float(history[-1][0]), float(history[-1][1])
    first = next((p for p in history if float(p[0]) >= last_t - window), history[-2])
    if first is history[-1]:
        first = history[-2]
    span = last_t - float(first[0])
    return max(0.0, (last_b - float(first[1])) / span) if span > 0 else 0.0


def throughput_chart(history: list[list[float]], *, width: int = 720, height: int = 170) -> str:
    """An inline SVG area chart of throughput over the run."""
    points = rates(history)
    if len(points) < 2:
        return '<p class="muted">The chart appears after a few heartbeats.</p>'
    left, bottom, top = 92, 22, 10
    start, end = float(history[0][0]), points[-1][0]
    span = max(end - start, 1e-9)
    peak = max(rate for _, rate in points) or 1.0
    plot_w, plot_h = width - left - 10, height - bottom - top

    def xy(t: float, rate: float) -> str:
        return f"{left + (t - start) / span * plot_w:.1f},{top + plot_h - rate / peak * plot_h:.1f}"

    line = " ".join(xy(t, r) for t, r in points)
    base = top + plot_h
    first = left + (points[0][0] - start) / span * plot_w
    area = f"M{first:.1f},{base} L{line} L{left + plot_w},{base} Z"
    return (
        f'<svg viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="throughput over time, peak {_e(format_size(peak))}/s">'
        f'<line x1="{left}" y1="{top}" x2="{left + plot_w}" y2="{top}"/>'
        f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}"/>'
        f'<path class="area" d="{area}"/>'
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{_e(format_size(peak))}/s</text>'
        f'<text x="{left - 6}" y="{base}" text-anchor="end">0</text>'
        f'<text x="{left}" y="{height - 5}">{_e(_when(start)[11:])}</text>'
        f'<text x="{left + plot_w}" y="{height - 5}" text-anchor="end">'
        f"{_e(_when(end)[11:])} (+{_e(format_duration(span))})</text></svg>"
    )


def _card(value: str, label: str, cls: str = "") -> str:
    return f'<div class="card"><b class="{cls}">{value}</b><span>{_e(label)}</span></div>'


def _groups(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    for key in ("folder_types", "folders"):
        groups = status.get(key)
        if isinstance(groups, dict):
            return groups
    return {}


def render_main(
    status: dict[str, Any] | None,
    *,
    path: Path,
    runs: list[dict[str, Any]] | None = None,
    failures: list[dict[str, Any]] | None = None,
    now: float | None = None,
) -> str:
    """The page's content: totals, groups, chart, failures, recent runs."""
    now = time.time() if now is None else now
    if status is None:
        parts = [
            "<h1>s3stow</h1>",
            f'<p class="sub">Waiting for {_e(path)}: the run has not written it yet.</p>',
        ]
        if runs:
            parts.append(_runs_table(runs))
        return "".join(parts)
    totals = status.get("totals") or {}
    updated = float(status.get("last_update") or now)
    started = float(status.get("started_at") or updated)
    history = status.get("history") or []
    failed = int(totals.get("failed", 0))
    phase = str(status.get("phase", "?"))
    ended = phase in _ENDED
    names = fields_of(status)  # a restore's: restored, bytes_restored, received
    sent = int(totals.get(names.bytes, 0))
    if ended:
        rate = sent / (updated - started) if updated > started else 0.0
    else:
        rate = recent_rate(history)
    parts = [
        f"<h1>s3stow {_e(status.get('command', 'upload'))}: {_e(phase)}</h1>",
        f'<p class="sub">{_e(status.get("target", ""))} · run {_e(status.get("run_id", "?"))}'
        f" · {'took' if ended else 'running'} {_e(format_duration(updated - started))}"
        f" · updated {_e(format_duration(max(0.0, now - updated)))} ago · {_e(path)}</p>",
        '<div class="cards">',
    ]
    done = sum(int(totals.get(k, 0)) for k in (names.done, "skipped", "failed", "pending"))
    if "backlog" in status:  # a watch: a backlog, no total
        parts.append(_card(_e(status["backlog"]), "files waiting"))
        oldest = format_duration(float(status.get("oldest_waiting_seconds") or 0))
        parts.append(_card(_e(oldest), "oldest waiting"))
    else:
        parts.append(_card(f"{done}/{_e(totals.get('files', 0))}", "files done"))
    parts += [
        _card(_e(totals.get(names.done, 0)), names.done, "ok"),
        _card(_e(totals.get("skipped", 0)), "skipped"),
        _card(_e(failed), "failed", "bad" if failed else ""),
        *([_card(_e(totals["pending"]), "waiting for Glacier")] if totals.get("pending") else []),
        *(
            [_card(_e(totals["not_started"]), "not started (--limit)")]
            if totals.get("not_started")
            else []
        ),
        _card(_e(format_size(sent)), names.moved),
        _card(_e(format_size(rate)) + "/s", "average throughput" if ended else "throughput now"),
        "</div>",
    ]
    if status.get("current_file"):
        size = int(status.get("current_file_size") or 0)
        sent = int(status.get("current_file_bytes") or 0)
        parts.append(
            f'<p class="path">current: {_e(status["current_file"])} '
            f"({_e(format_size(sent))} of {_e(format_size(size))})</p>"
        )
    parts += ["<h2>Throughput</h2>", throughput_chart(history)]
    groups = _groups(status)
    if groups:
        parts.append(_groups_table(groups, names=names))
    shown = failures if failures is not None else status.get("failures") or []
    parts.append(_failures_table(shown, failed))
    if runs:
        parts.append(_runs_table(runs))
    return "".join(parts)


def _groups_table(groups: dict[str, dict[str, Any]], *, names: Fields) -> str:
    rows = []
    for name, g in sorted(groups.items()):
        planned = int(g.get("planned_files") or 0)
        done = sum(int(g.get(k) or 0) for k in (names.done, "skipped", "failed", "pending"))
        planned_bytes = int(g.get("planned_bytes") or 0)
        share = min(
            100.0,
            max(  # a large file in flight moves the bar before it is done
                100.0 * done / planned if planned else 0.0,
                100.0 * int(g.get(names.bytes) or 0) / planned_bytes if planned_bytes else 0.0,
            ),
        )
        rows.append(
            f"<tr><td>{_e(name)}</td>"
            f'<td><div class="bar"><i style="width:{share:.1f}%"></i></div></td>'
            f'<td class="n">{done}/{planned}</td>'
            f'<td class="n">{_e(g.get(names.done, 0))}</td>'
            f'<td class="n">{_e(g.get("skipped", 0))}</td>'
            f'<td class="n{" bad" if g.get("failed") else ""}">{_e(g.get("failed", 0))}</td>'
            f'<td class="n">{_e(format_size(int(g.get(names.bytes) or 0)))}</td>'
            f'<td class="n">{_e(format_size(planned_bytes))}</td></tr>'
        )
    return (
        "<h2>Groups</h2><table><tr><th>group</th><th>progress</th><th class='n'>files</th>"
        f"<th class='n'>{names.done}</th><th class='n'>skipped</th><th class='n'>failed</th>"
        f"<th class='n'>{names.moved}</th><th class='n'>planned</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _failures_table(failures: list[dict[str, Any]], failed: int) -> str:
    if not failures:
        return "<h2>Failures</h2><p class='ok'>None.</p>" if not failed else ""
    rows = "".join(
        f"<tr><td class='path'>{_e(f.get('path') or f.get('key') or '')}</td>"
        f"<td class='bad'>{_e(f.get('error_class') or f.get('status') or '')}</td>"
        f"<td>{_e(f.get('error') or '')}</td><td>{_e(_when(f.get('at'))[11:])}</td></tr>"
        for f in failures
    )
    return (
        f"<h2>Failures ({len(failures)} latest)</h2><table><tr><th>file</th><th>error</th>"
        f"<th>reason</th><th>at</th></tr>{rows}</table>"
    )


def _runs_table(runs: list[dict[str, Any]]) -> str:
    rows = []
    for run in runs:
        summary = run.get("summary") or {}
        end = float(run.get("finished_at") or time.time())
        took = format_duration(end - float(run.get("started_at") or end))
        counts = (
            f"{summary.get('uploaded', summary.get('restored', 0))} / "
            f"{summary.get('skipped', 0)} / {summary.get('failed', 0)}"
            if summary
            else "—"
        )
        status = str(run.get("status", ""))
        cls = "bad" if status == "failed" else ("ok" if status == "done" else "")
        rows.append(
            f"<tr><td>{_e(run.get('run_id'))}</td><td>{_e(run.get('command'))}</td>"
            f"<td class='path'>{_e(run.get('target'))}</td><td class='{cls}'>{_e(status)}</td>"
            f"<td>{_e(_when(run.get('started_at')))}</td>"
            f"<td class='n'>{_e(took)}</td>"
            f"<td class='n'>{_e(counts)}</td></tr>"
        )
    return (
        "<h2>Recent runs (ledger)</h2><table><tr><th>run</th><th>command</th><th>target</th>"
        "<th>status</th><th>started</th><th class='n'>took</th>"
        "<th class='n'>done / skipped / failed</th></tr>" + "".join(rows) + "</table>"
    )


def render_page(main: str, *, refresh: float) -> str:
    """The whole document around ``main``."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>s3stow status</title><style>{_STYLE}</style>"
        f"<noscript><meta http-equiv='refresh' content='{int(refresh)}'></noscript>"
        f"</head><body><main>{main}</main><script>{page_script(refresh)}</script></body></html>"
    )
