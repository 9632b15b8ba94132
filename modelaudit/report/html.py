"""The HTML report: one self-contained file per run, failing tests first.

Per test: the outcome, the failure text, the metrics against the baseline, and one block
per audit record, the same for every check (heat-map, hook, shape, baseline gate): a title
line (check, verdict, obtained, bound, chance, failing items), the record's message, then
its items: a grid of sample cards when the record carries pictures (input | heat-map
overlay with the ground-truth box, value, pass/fail; failing samples first, worst first,
outlined in red), otherwise a table of items (label | value or reason | pass/fail, failing
first). Images are inline ``data:`` PNGs, so the file can be attached to a CI run or mailed
as is. No JavaScript.

Example:
    >>> from modelaudit.report.entries import TestEntry
    >>> page = render_html([TestEntry("tests/test_a.py::test_x", "failed", message="boom")])
    >>> "<!doctype html>" in page and "FAILED" in page and "boom" in page
    True
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from modelaudit._atomic import atomic_write_text
from modelaudit._format import format_number
from modelaudit.baseline import Comparison
from modelaudit.report.colormap import colorize
from modelaudit.report.entries import (
    OUTCOME_ORDER,
    Attachment,
    RecordView,
    TestEntry,
    encode_png,
    mirrors_metrics,
    sort_entries,
)
from modelaudit.report.overlay import OUTLINE_COLORS
from modelaudit.report.picking import failing_first

__all__ = ["render_html", "write_html"]

MAX_ITEM_ROWS = 50
"""Rows of a record's item table (failing items first); the rest are counted."""
MAX_LISTED = 10
"""Failing items named in a record's title line."""

_CSS = """
:root { --fail: #b42318; --pass: #067647; --skip: #6b7280; --line: #d0d5dd; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #101828; background: #f6f7f9; margin: 0; padding: 24px 32px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 0; display: flex; gap: 10px; align-items: baseline;
     flex-wrap: wrap; }
h3 { font-size: 15px; margin: 18px 0 6px; }
code, pre, .nodeid { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.nodeid { font-size: 14px; word-break: break-all; }
.meta { color: #475467; margin: 0 0 2px; }
.metas { margin: 0 0 14px; }
.legend { display: flex; gap: 18px; align-items: center; flex-wrap: wrap; margin: 0 0 20px;
          color: #344054; font-size: 13px; }
.legend img { height: 12px; width: 160px; vertical-align: middle; margin: 0 6px;
              border: 1px solid var(--line); }
.swatch { display: inline-block; width: 14px; height: 14px; border: 3px solid;
          vertical-align: middle; margin-right: 4px; }
section.test { background: #fff; border: 1px solid var(--line); border-left: 6px solid
               var(--pass); border-radius: 6px; padding: 14px 18px; margin: 0 0 16px; }
section.test.failed { border-left-color: var(--fail); }
section.test.skipped { border-left-color: var(--skip); }
.badge { font-size: 12px; font-weight: 700; letter-spacing: .04em; color: #fff;
         padding: 2px 8px; border-radius: 4px; background: var(--pass); }
.badge.fail { background: var(--fail); }
.badge.skip { background: var(--skip); }
.dur { color: #667085; font-size: 13px; }
pre.failure { background: #fef3f2; border: 1px solid #fecdca; padding: 10px 12px;
              white-space: pre-wrap; font-size: 13px; margin: 10px 0; max-height: 320px;
              overflow: auto; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 14px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 10px; text-align: left;
         vertical-align: middle; }
th { background: #f2f4f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums;
         font-family: ui-monospace, Menlo, Consolas, monospace; }
.ok { color: var(--pass); font-weight: 600; }
.bad { color: var(--fail); font-weight: 600; }
tr.bad-row td { background: #fff6f5; }
img.px { width: 160px; height: auto; image-rendering: pixelated; display: block;
         border: 1px solid var(--line); }
.samples { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0 12px; }
.sample { margin: 0; padding: 6px; border: 1px solid var(--line); border-radius: 6px;
          background: #fff; }
.sample.bad { border: 2px solid var(--fail); background: #fff6f5; }
.sample .pair { display: flex; gap: 6px; }
.sample .pair span { display: block; font-size: 11px; color: #667085; text-align: center; }
.sample figcaption { margin-top: 4px; font-size: 13px; }
img.overview { width: 600px; max-width: 100%; height: auto; image-rendering: pixelated;
               display: block; border: 1px solid var(--line); }
figure.overview { display: block; margin: 8px 0 12px; }
.record p.msg { white-space: pre-wrap; margin: 4px 0; color: #344054; font-size: 13px; }
.note { color: #667085; font-size: 13px; }
figure { display: inline-block; margin: 6px 12px 6px 0; }
figcaption { font-size: 13px; color: #475467; }
nav ul { margin: 0 0 18px; padding-left: 18px; font-size: 14px; }
"""


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if value is None or isinstance(value, int | float):
        return format_number(value, missing="—")
    return escape(str(value))


def _badge(outcome: str) -> str:
    cls = "fail" if outcome in ("failed", "error", "xpassed") else ""
    cls = "skip" if outcome in ("skipped", "xfailed") else cls
    return f'<span class="badge {cls}">{escape(outcome.upper())}</span>'


def _verdict(passed: bool | None) -> str:
    if passed is None:
        return "—"
    return '<span class="ok">pass</span>' if passed else '<span class="bad">FAIL</span>'


def _img(png: str | None, alt: str) -> str:
    if png is None:
        return "—"
    return f'<img class="px" src="data:image/png;base64,{png}" alt="{escape(alt)}">'


def _metrics_table(metrics: Sequence[Comparison]) -> str:
    if not metrics:
        return ""
    rows = []
    for c in metrics:
        paired = ""
        if c.ci is not None and c.samples is not None:
            paired = (
                f"<br><span class='note'>95% CI {_fmt(c.ci[0])} to {_fmt(c.ci[1])}, "
                f"paired on {len(c.samples)} samples</span>"
            )
        note = f"<br><span class='note'>{escape(c.note)}</span>" if c.note else ""
        rows.append(
            f'<tr class="{"" if c.passed else "bad-row"}"><td><code>{escape(c.name)}</code></td>'
            f'<td class="num">{_fmt(c.value)}</td><td class="num">{_fmt(c.baseline)}</td>'
            f'<td class="num">{_fmt(c.delta)}{paired}</td><td>{escape(c.direction)} is better</td>'
            f'<td class="num">{_fmt(100 * c.tolerance)}%</td>'
            f"<td>{_verdict(c.passed)} <span class='note'>{escape(c.status)}</span>{note}</td></tr>"
        )
    return (
        "<h3>Metrics</h3><table class='metrics'><tr><th>metric</th><th>value</th>"
        "<th>baseline</th><th>delta</th><th>direction</th><th>tolerance</th><th>result</th>"
        "</tr>" + "".join(rows) + "</table>"
    )


def _bound_text(record: Mapping[str, Any]) -> str:
    bound, direction = record.get("bound"), record.get("direction")
    if bound is None:
        return ""
    sign = {"higher": "≥", "lower": "≤"}.get(str(direction), "vs")
    return f"bound {sign} {_fmt(bound)}"


def _labels(record: Mapping[str, Any]) -> list[str]:
    values = list(record.get("values") or [])
    items = [str(i) for i in record.get("items") or []]
    return items if len(items) == len(values) else [str(i) for i in range(len(values))]


def _record_head(record: Mapping[str, Any], anchor: str) -> str:
    parts = []
    if record.get("obtained") is not None:
        parts.append(f"obtained {_fmt(record.get('obtained'))}")
    if bound := _bound_text(record):
        parts.append(bound)
    if record.get("chance") is not None:
        parts.append(f"chance {_fmt(record.get('chance'))}")
    if record.get("aggregate"):
        parts.append(f"aggregate: {escape(str(record['aggregate']))}")
    labels, failing = _labels(record), [int(i) for i in record.get("failing") or []]
    if failing:
        worst = failing_first(
            record.get("values") or [], failing, record.get("direction"), len(labels)
        )
        known = len({i for i in failing if 0 <= i < len(labels)})
        named = [labels[i] for i in worst[: min(known, MAX_LISTED)]]
        more = f" … and {len(failing) - MAX_LISTED} more" if len(failing) > MAX_LISTED else ""
        unit = escape(str(record.get("unit") or "sample"))
        parts.append(f"failing {unit}s: {escape(', '.join(named))}{more}")
    who = escape(str(record.get("assertion") or ""))
    return (
        f"<h3 id='{anchor}'><code>{escape(str(record.get('check', 'check')))}</code> — "
        f"{' · '.join([_verdict(bool(record.get('passed'))), *parts])}"
        + (f" <span class='note'>({who})</span>" if who else "")
        + "</h3>"
    )


def _item_table(record: Mapping[str, Any]) -> str:
    """The items of a record without pictures: failing first, worst first."""
    values, labels = list(record.get("values") or []), _labels(record)
    reasons = [str(r) for r in record.get("reasons") or []]
    failing = {int(i) for i in record.get("failing") or []}
    order = failing_first(values, sorted(failing), record.get("direction"), len(values))
    rows = []
    for i in order[:MAX_ITEM_ROWS]:
        reason = reasons[i] if len(reasons) == len(values) else ""
        cell = f"<td>{escape(reason)}</td>" if reason else f"<td class='num'>{_fmt(values[i])}</td>"
        rows.append(
            f"<tr class='{'bad-row' if i in failing else ''}'><td><code>{escape(labels[i])}"
            f"</code></td>{cell}<td>{_verdict(i not in failing)}</td></tr>"
        )
    if not rows:
        return ""
    unit = escape(str(record.get("unit") or "item"))
    hidden = len(order) - len(rows)
    more = f"<p class='note'>{hidden} more {unit}s not shown.</p>" if hidden else ""
    return (
        f"<table class='items'><tr><th>{unit}</th><th>value</th><th>result</th></tr>"
        + "".join(rows)
        + "</table>"
        + more
    )


def _sample_cards(view: RecordView) -> str:
    cards = []
    for s in view.samples:
        bad = s.passed is False
        cards.append(
            f"<figure class='sample{' bad' if bad else ''}'><div class='pair'>"
            f"<div><span>input</span>{_img(s.input_png, f'input {s.index}')}</div>"
            f"<div><span>heat map + ground truth</span>"
            f"{_img(s.overlay_png, f'overlay {s.index}')}</div></div>"
            f"<figcaption>sample <strong>{s.index}</strong> · value "
            f"<code>{_fmt(s.value)}</code> · {_verdict(s.passed)}</figcaption></figure>"
        )
    return "<div class='samples'>" + "".join(cards) + "</div>"


def _overview(view: RecordView) -> str:
    """A failed record's dataset-level picture, its caption and its file (or nothing)."""
    if not view.overview_png:
        return ""
    where = escape(view.overview_caption or "")
    file = f"<br><code>{escape(view.overview_file)}</code>" if view.overview_file else ""
    return (
        "<figure class='overview'><img class='overview' "
        f"src='data:image/png;base64,{view.overview_png}' alt='overview: {where}'>"
        "<figcaption>Where the model looks instead: "
        f"<strong>{where}</strong><br><span class='note'>left: the mean heat map over the "
        "mean image, with the pixels inside at least half the objects outlined; middle: "
        "the mean object (white: every object covers the pixel); right: the mean mass off "
        f"the object, the named region outlined</span>{file}</figcaption></figure>"
    )


def _record_block(view: RecordView, anchor: str, shown: str) -> str:
    rec = view.record
    body = [_record_head(rec, anchor)]
    message = str(rec.get("message") or "")
    if message and message not in shown:  # not repeated when it is the failure text
        body.append(f"<p class='msg'>{escape(message)}</p>")
    if view.error:
        body.append(f"<p class='note'>{escape(view.error)}</p>")
    body.append(_overview(view))
    body.append(_sample_cards(view) if view.samples else _item_table(rec))
    if view.hidden:
        body.append(f"<p class='note'>{view.hidden} more samples not shown.</p>")
    if view.files:
        body.append(
            "<p class='note'>overlay files: "
            + ", ".join(f"<code>{escape(str(p))}</code>" for p in view.files)
            + "</p>"
        )
    return "<div class='record'>" + "".join(body) + "</div>"


def _attachments(items: Sequence[Attachment]) -> str:
    if not items:
        return ""
    figs = "".join(
        f"<figure>{_img(a.png, a.name)}<figcaption>{escape(a.name)}</figcaption></figure>"
        for a in items
    )
    return f"<h3>Attached images</h3><div>{figs}</div>"


def _test_section(entry: TestEntry, index: int) -> str:
    state = "failed" if entry.failed else ("skipped" if entry.outcome == "skipped" else "")
    out = [
        f"<section class='test {state}' id='t{index}'><h2>{_badge(entry.outcome)}"
        f"<span class='nodeid'>{escape(entry.nodeid)}</span>"
        f"<span class='dur'>{entry.duration:.2f} s</span></h2>"
    ]
    if entry.message:
        out.append(f"<pre class='failure'>{escape(entry.message)}</pre>")
    out.append(_metrics_table(entry.metrics))
    for j, view in enumerate(entry.records):
        if view.record.get("passed") and mirrors_metrics(view, entry.metrics):
            continue  # a passing gate over the metrics above: the table says it all
        out.append(_record_block(view, f"t{index}r{j}", entry.message))
    if entry.omitted_records:
        out.append(
            f"<p class='note'>{entry.omitted_records} earlier records of this test not shown "
            "(only the last ones are kept, e.g. the final hypothesis example).</p>"
        )
    out.append(_attachments(entry.attachments))
    out.append("</section>")
    return "".join(out)


def _legend(colormap: str) -> str:
    bar = colorize(np.tile(np.linspace(0.0, 1.0, 128), (4, 1)), colormap)
    box = "#{:02x}{:02x}{:02x}".format(*OUTLINE_COLORS[colormap]["box"])
    mask = "#{:02x}{:02x}{:02x}".format(*OUTLINE_COLORS[colormap]["mask"])
    return (
        "<div class='legend'><span>heat map: low"
        f"<img src='data:image/png;base64,{encode_png(bar)}' alt='{escape(colormap)} scale'>"
        f"high ({escape(colormap)})</span>"
        f"<span><span class='swatch' style='border-color:{box}'></span>ground-truth box</span>"
        f"<span><span class='swatch' style='border-color:{mask}'></span>ground-truth mask"
        "</span></div>"
    )


def render_html(
    entries: Iterable[TestEntry],
    *,
    title: str = "modelaudit report",
    notes: Sequence[str] = (),
    colormap: str = "inferno",
) -> str:
    """Render the report page.

    Args:
        entries: one per audited test, in run order (failing tests are moved first).
        title: page title.
        notes: extra lines shown under the title (model, baseline file...).
        colormap: the colormap the overlays used, for the legend.
    """
    ordered = sort_entries(entries)
    counts = {o: sum(e.outcome == o for e in ordered) for o in OUTCOME_ORDER}
    summary = ", ".join(f"{n} {o}" for o, n in counts.items() if n) or "no tests"
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    meta = [f"{len(ordered)} audited tests: {summary}", f"generated {stamp}", *notes]
    failing = [(i, e) for i, e in enumerate(ordered) if e.failed]
    nav = ""
    if failing:
        nav = (
            "<nav><strong>Failing:</strong><ul>"
            + "".join(
                f"<li><a href='#t{i}'><code>{escape(e.nodeid)}</code></a></li>" for i, e in failing
            )
            + "</ul></nav>"
        )
    body = "".join(_test_section(e, i) for i, e in enumerate(ordered))
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        + "<div class='metas'>"
        + "".join(f"<p class='meta'>{escape(line)}</p>" for line in meta)
        + "</div>"
        + _legend(colormap)
        + nav
        + (body or "<p>No audited tests ran.</p>")
        + "</body></html>\n"
    )


def write_html(entries: Iterable[TestEntry], path: str | os.PathLike[str], **options: Any) -> Path:
    """Render with :func:`render_html` and write the page atomically; return its path.

    Example:
        >>> import tempfile, pathlib
        >>> out = write_html([], pathlib.Path(tempfile.mkdtemp()) / "report.html")
        >>> "No audited tests ran." in out.read_text()
        True
    """
    return atomic_write_text(path, render_html(entries, **options))
