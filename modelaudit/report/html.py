"""The HTML report: one self-contained file per run, built for a 30-second triage.

Top: a summary table with one row per gate of every test (the gates of
:mod:`modelaudit.report.gates`: what the value is, the value, the bound or baseline, the
chance level, the verdict; failing tests first) and a "Failed only" switch, on when
anything failed, that hides every passing row and section (pure CSS, no script). Then one
collapsible section per test (open when it failed): the failure text, the metrics against
the baseline, and one collapsible block per audit record (open when it failed) with its
title line (verdict, what the value is, bound, chance, failing items as counts and
ranges), a legend of exactly what its pictures draw, the dataset-level picture, the
deletion / insertion plot, and sample tiles: worst first, at most ``max_samples`` for a
failing check and a few for a passing one. A tile shows the input, the heat map over it
(the object's box or mask, or the forbidden region, outlined; the pointing game's hottest
pixel marked), the check's own extra maps (randomised model, noisy input), and says the
sample's value and verdict, the explained and predicted classes with the probability, and
the method and layer. Records without pictures list their items in a table (failing first).
Images are inline ``data:`` PNGs, paths are relative to the report, so the file can be
attached to a CI run or mailed as is.

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
from modelaudit._format import format_number, format_ranges
from modelaudit.baseline import Comparison
from modelaudit.report.colormap import colorize
from modelaudit.report.entries import (
    OUTCOME_ORDER,
    Attachment,
    RecordView,
    TestEntry,
    encode_png,
    mirrors_metrics,
    section_id,
    sort_entries,
)
from modelaudit.report.gates import Gate, run_gates, value_is
from modelaudit.report.picking import failing_first
from modelaudit.report.plot import curves_svg
from modelaudit.report.tiles import record_legend, sample_tiles

__all__ = ["render_html", "write_html"]

MAX_ITEM_ROWS = 50
"""Rows of a record's item table (failing items first); the rest are counted."""
MAX_RUNS = 12
"""Runs of consecutive failing items spelled out in a record's title line."""

_CSS = """
:root { --fail: #b42318; --pass: #067647; --skip: #6b7280; --line: #d0d5dd; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #101828; background: #f6f7f9; margin: 0; padding: 24px 32px; }
h1 { font-size: 24px; margin: 0 0 4px; }
code, pre, .nodeid { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.nodeid { font-size: 14px; word-break: break-all; }
.meta { color: #475467; margin: 0 0 2px; }
.metas { margin: 0 0 12px; }
.toolbar { display: flex; gap: 18px; align-items: center; margin: 8px 0; }
.toolbar label { font-weight: 600; cursor: pointer; }
.legend { display: flex; gap: 18px; align-items: center; flex-wrap: wrap; margin: 6px 0 16px;
          color: #344054; font-size: 13px; }
.legend.small { margin: 4px 0 6px; }
.legend img { height: 12px; width: 160px; vertical-align: middle; margin: 0 6px;
              border: 1px solid var(--line); }
.swatch { display: inline-block; width: 14px; height: 14px; border: 3px solid;
          vertical-align: middle; margin-right: 4px; }
.peak { display: inline-block; font-weight: 900; color: #fff; background: #000;
        width: 16px; text-align: center; margin-right: 4px; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 14px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left;
         vertical-align: middle; }
th { background: #f2f4f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums;
         font-family: ui-monospace, Menlo, Consolas, monospace; }
#summary { background: #fff; }
#summary tr.group td { background: #f9fafb; font-size: 13px; font-weight: 600;
                       word-break: break-all; padding-top: 8px; }
#summary tr.sub td.check { padding-left: 28px; }
#summary tr.byclass td { color: #667085; }
.ok { color: var(--pass); font-weight: 600; }
.bad { color: var(--fail); font-weight: 600; }
tr.bad-row td, tr.gate.failed td { background: #fff6f5; }
body:has(#only-failed:checked) .passed { display: none; }
details.test { background: #fff; border: 1px solid var(--line); border-left: 6px solid
               var(--pass); border-radius: 6px; padding: 10px 18px; margin: 0 0 14px; }
details.test.failed { border-left-color: var(--fail); }
details.test.skipped { border-left-color: var(--skip); }
details.test > summary { font-size: 16px; font-weight: 600; cursor: pointer;
                         display: list-item; }
details.record { margin: 10px 0 6px; border-top: 1px solid var(--line); padding-top: 6px; }
details.record > summary { cursor: pointer; font-size: 15px; }
.badge { font-size: 12px; font-weight: 700; letter-spacing: .04em; color: #fff;
         padding: 2px 8px; border-radius: 4px; background: var(--pass); margin-right: 8px; }
.badge.fail { background: var(--fail); }
.badge.skip { background: var(--skip); }
.dur { color: #667085; font-size: 13px; font-weight: 400; margin-left: 8px; }
pre.failure { background: #fef3f2; border: 1px solid #fecdca; padding: 10px 12px;
              white-space: pre-wrap; font-size: 13px; margin: 10px 0; max-height: 320px;
              overflow: auto; }
img.px { width: 128px; height: auto; image-rendering: pixelated; display: block;
         border: 1px solid var(--line); }
.samples { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0 12px; }
.sample { margin: 0; padding: 6px; border: 1px solid var(--line); border-radius: 6px;
          background: #fff; }
.sample.bad { border: 2px solid var(--fail); background: #fff6f5; }
.sample .pair { display: flex; gap: 6px; }
.sample .pair span { display: block; font-size: 11px; color: #667085; text-align: center;
                     max-width: 128px; overflow: hidden; white-space: nowrap;
                     text-overflow: ellipsis; }
.sample figcaption { margin-top: 4px; font-size: 13px; }
img.overview { width: 600px; max-width: 100%; height: auto; image-rendering: pixelated;
               display: block; border: 1px solid var(--line); }
figure.overview, figure.plot { display: block; margin: 8px 0 12px; }
.record p.msg { white-space: pre-wrap; margin: 4px 0; color: #344054; font-size: 13px; }
.note { color: #667085; font-size: 13px; }
figure { display: inline-block; margin: 6px 12px 6px 0; }
figcaption { font-size: 13px; color: #475467; }
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


def _state(passed: bool) -> str:
    return "passed" if passed else "failed"


def _img(png: str | None, alt: str) -> str:
    if png is None:
        return "—"
    return f'<img class="px" src="data:image/png;base64,{png}" alt="{escape(alt)}">'


def _summary_table(gates: Sequence[Gate], entries: Sequence[TestEntry]) -> str:
    """The triage table: per test (failing tests first) a row linking to its section, then
    one row per gate. A class's row that does not gate is not a ``gate`` row: it follows
    its test's state under the "Failed only" switch."""
    if not gates:
        return ""
    failed = {e.nodeid: e.failed for e in entries}
    rows, last = [], None
    for g in gates:
        if g.test != last:
            last, state = g.test, _state(not failed.get(g.test, False))
            rows.append(
                f"<tr class='group {state}'><td colspan='6'><a href='#{section_id(g.test)}'>"
                f"{escape(g.test)}</a></td></tr>"
            )
        verdict = _verdict(g.passed) if g.gating else f"<span class='note'>{g.verdict()}</span>"
        if g.status:
            verdict += f" <span class='note'>{escape(g.status)}</span>"
        kind = f"gate {_state(g.passed)}" if g.gating else f"byclass {state}"
        rows.append(
            f"<tr class='{kind}{' sub' if g.sub else ''}'>"
            f"<td class='check'><code>{escape(g.check)}</code></td>"
            f"<td>{escape(g.value_is)}</td><td class='num'>{escape(g.shown_value())}</td>"
            f"<td>{escape(g.limit(unicode=True))}</td>"
            f"<td class='num'>{_fmt(g.chance)}</td><td>{verdict}</td></tr>"
        )
    return (
        "<table id='summary'><tr><th>check</th><th>value is</th><th>value</th>"
        "<th>bound or baseline</th><th>chance</th><th>verdict</th></tr>"
        + "".join(rows)
        + "</table>"
    )


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
        "<h3>Metrics against the baseline</h3><table class='metrics'><tr><th>metric</th>"
        "<th>value</th><th>baseline</th><th>delta</th><th>direction</th><th>tolerance</th>"
        "<th>result</th></tr>" + "".join(rows) + "</table>"
    )


def _labels(record: Mapping[str, Any]) -> list[str]:
    values = list(record.get("values") or [])
    items = [str(i) for i in record.get("items") or []]
    return items if len(items) == len(values) else [str(i) for i in range(len(values))]


def _failing_text(record: Mapping[str, Any]) -> str:
    """``failing samples: 62 of 64 (0-5, 7-63)``; items that are not indices by name."""
    labels = _labels(record)
    failing = sorted({int(i) for i in record.get("failing") or [] if 0 <= int(i) < len(labels)})
    if not failing:
        return ""
    unit = escape(str(record.get("unit") or "sample"))
    what = f"failing {unit}s" if not record.get("passed") else f"{unit}s missing the bound"
    if all(labels[i] == str(i) for i in failing):
        listed = format_ranges(failing, limit=MAX_RUNS)
    else:
        names = [labels[i] for i in failing[:MAX_RUNS]]
        more = len(failing) - len(names)
        listed = ", ".join(names) + (f" and {more} more" if more else "")
    return f"{what}: {len(failing)} of {len(labels)} ({escape(listed)})"


def _record_head(record: Mapping[str, Any]) -> str:
    parts = [_verdict(bool(record.get("passed")))]
    details = record.get("details") or {}
    if record.get("aggregate") == "fraction" and "passing_fraction" in details:
        got, need = details["passing_fraction"], details.get("required_fraction", 0.0)
        parts.append(f"{escape(value_is(record))}: {100 * got:.0f}% (needs {100 * need:.0f}%)")
    elif record.get("obtained") is not None:
        parts.append(f"{escape(value_is(record))}: {_fmt(record.get('obtained'))}")
    bound, direction = record.get("bound"), record.get("direction")
    if bound is not None:
        parts.append(
            f"bound { ({'higher': '≥', 'lower': '≤'}.get(str(direction), 'vs')) } {_fmt(bound)}"
        )
    if record.get("chance") is not None:
        parts.append(f"chance {_fmt(record.get('chance'))}")
    if failing := _failing_text(record):
        parts.append(failing)
    who = escape(str(record.get("assertion") or ""))
    return (
        f"<summary><code>{escape(str(record.get('check', 'check')))}</code> — "
        + " · ".join(parts)
        + (f" <span class='note'>({who})</span>" if who else "")
        + "</summary>"
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
    more = (
        f"<p class='note'>{hidden} more {unit}s not shown (all are in records.json).</p>"
        if hidden
        else ""
    )
    return (
        f"<table class='items'><tr><th>{unit}</th><th>value</th><th>result</th></tr>"
        + "".join(rows)
        + "</table>"
        + more
    )


def _overview(view: RecordView) -> str:
    """A heat-map check's dataset-level picture and its caption (or nothing)."""
    if not view.overview_png:
        return ""
    where = escape(view.overview_caption or "")
    lead = (
        "Where the model looks instead" if not view.record.get("passed") else "Where the maps lie"
    )
    file = (
        f" <a href='{escape(view.overview_file)}'>{escape(view.overview_file)}</a>"
        if view.overview_file
        else ""
    )
    return (
        "<figure class='overview'><img class='overview' "
        f"src='data:image/png;base64,{view.overview_png}' alt='overview: {where}'>"
        f"<figcaption>{lead}: <strong>{where}</strong><br><span class='note'>left: the mean "
        "heat map over the mean image, with the pixels inside at least half the objects "
        "outlined; middle: the mean object (white: every object covers the pixel); right: "
        f"the mean mass off the object, the named region outlined</span>{file}</figcaption>"
        "</figure>"
    )


def _plot(view: RecordView) -> str:
    if not view.curves:
        return ""
    n = len(view.record.get("values") or [])
    return (
        f"<figure class='plot'>{curves_svg(view.curves)}<figcaption>mean over {n} samples; "
        "the dashed curve takes the pixels in a random order: a faithful map's deletion "
        "curve falls below it (insertion: rises above it)</figcaption></figure>"
    )


def _more(view: RecordView) -> str:
    out = []
    if view.hidden:
        drawn = len(view.samples)
        out.append(
            f"<p class='note'>{drawn} of {drawn + view.hidden} samples drawn, worst first; "
            "draw more with <code>--audit-report-samples=N</code> (values of all samples are "
            "in records.json).</p>"
        )
    if view.files:
        folder = view.files[0].rsplit("/", 1)[0] + "/"
        out.append(
            f"<p class='note'>failing samples' overlays ({len(view.files)} PNGs): "
            f"<a href='{escape(folder)}'>{escape(folder)}</a></p>"
        )
    return "".join(out)


def _record_block(view: RecordView, shown: str, colormap: str) -> str:
    rec = view.record
    passed = bool(rec.get("passed"))
    body = [
        f"<details class='record {_state(passed)}'{'' if passed else ' open'}>",
        _record_head(rec),
    ]
    message = str(rec.get("message") or "")
    if message and message not in shown:  # not repeated when it is the failure text
        body.append(f"<p class='msg'>{escape(message)}</p>")
    if view.error:
        body.append(f"<p class='note'>{escape(view.error)}</p>")
    body += [record_legend(view, colormap), _overview(view), _plot(view)]
    body.append(sample_tiles(view) if view.samples else _item_table(rec))
    body += [_more(view), "</details>"]
    return "<div class='record'>" + "".join(body) + "</div>"


def _attachments(items: Sequence[Attachment]) -> str:
    if not items:
        return ""
    figs = "".join(
        f"<figure>{_img(a.png, a.name)}<figcaption>{escape(a.name)}</figcaption></figure>"
        for a in items
    )
    return f"<h3>Attached images</h3><div>{figs}</div>"


def _test_section(entry: TestEntry, colormap: str) -> str:
    state = "failed" if entry.failed else ("skipped" if entry.outcome == "skipped" else "passed")
    out = [
        f"<details class='test {state}' id='{section_id(entry.nodeid)}'"
        f"{' open' if entry.failed else ''}><summary>{_badge(entry.outcome)}"
        f"<span class='nodeid'>{escape(entry.nodeid)}</span>"
        f"<span class='dur'>{entry.duration:.2f} s</span></summary>"
    ]
    if entry.message:
        out.append(f"<pre class='failure'>{escape(entry.message)}</pre>")
    out.append(_metrics_table(entry.metrics))
    for view in entry.records:
        if view.record.get("passed") and mirrors_metrics(view, entry.metrics):
            continue  # a passing gate over the metrics above: the table says it all
        out.append(_record_block(view, entry.message, colormap))
    if entry.omitted_records:
        out.append(
            f"<p class='note'>{entry.omitted_records} earlier records of this test not shown "
            "(only the last ones are kept, e.g. the final hypothesis example).</p>"
        )
    out.append(_attachments(entry.attachments))
    out.append("</details>")
    return "".join(out)


def _colour_bar(colormap: str) -> str:
    bar = colorize(np.tile(np.linspace(0.0, 1.0, 128), (4, 1)), colormap)
    return (
        "<div class='legend'><span>heat map: low"
        f"<img src='data:image/png;base64,{encode_png(bar)}' alt='{escape(colormap)} scale'>"
        f"high ({escape(colormap)}; each map scaled to its own maximum)</span></div>"
    )


def _toolbar(gates: Sequence[Gate], entries: Sequence[TestEntry]) -> str:
    gating = [g for g in gates if g.gating]
    failed = sum(not g.passed for g in gating)
    failing_tests = sum(e.failed for e in entries)
    checked = " checked" if failed or failing_tests else ""
    return (
        "<div class='toolbar'><label><input type='checkbox' id='only-failed'"
        f"{checked}> Failed only</label><span>{len(gating)} gates in {len(entries)} tests: "
        f"<strong class='{'bad' if failed else 'ok'}'>{failed} failed</strong>, "
        f"{len(gating) - failed} passed; {failing_tests} failing tests</span></div>"
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
        colormap: the colormap the overlays used, for the colour bar and outlines.
    """
    ordered = sort_entries(entries)
    counts = {o: sum(e.outcome == o for e in ordered) for o in OUTCOME_ORDER}
    summary = ", ".join(f"{n} {o}" for o, n in counts.items() if n) or "no tests"
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    meta = [f"{len(ordered)} audited tests: {summary}", f"generated {stamp}", *notes]
    gates = run_gates(ordered)
    body = "".join(_test_section(e, colormap) for e in ordered)
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        + "<div class='metas'>"
        + "".join(f"<p class='meta'>{escape(line)}</p>" for line in meta)
        + "</div>"
        + _toolbar(gates, ordered)
        + _summary_table(gates, ordered)
        + _colour_bar(colormap)
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
