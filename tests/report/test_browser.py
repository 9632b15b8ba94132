"""The HTML report in a real browser: headless Chromium, driven by playwright-python.

Run with ``make test-browser`` (``.ci/run`` runs it after ``make test``, which deselects
the ``browser`` marker). It needs Debian's ``chromium`` package (``/usr/bin/chromium``);
playwright is pointed at that binary, so ``playwright install`` is never needed.

The reports come from the shipped audit suite, run in a subprocess as ``make audit`` does:
once on ``shapes-cnn-shortcut`` (five audits fail: exit status 1) and once on ``shapes-cnn``
(all pass). The page must honour the report's DOM contract:

- ``<input type="checkbox" id="only-failed">``, checked on load when any gate failed;
- ``<table id="summary">`` with one ``<tr class="gate failed|passed">`` per gate;
- ``<details class="test failed|passed">`` per test, open when failed;
- with ``#only-failed`` checked, passing rows and sections are not displayed.

The expected gate counts come from ``records.json`` (the JSON export next to the report),
counted here from the schema, not by the report's code: a gate is each baseline metric
(``metrics``) and each check record, except the ``audit`` fixture's baseline-gate record
whose comparisons are those metrics; a record that decides several numbers each against
its own limit, without one bound (background reliance), is one gate per number, as in the
terminal summary; per-class results (``per_class``) are gates only when they can fail the
test (``details.gated_per_class``): otherwise they inform and are not ``tr.gate`` rows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SIZE_BUDGET = 2_000_000  # bytes: issue 14, "at most 2 MB" for the shortcut model's report
MISSING_CHROMIUM = (
    "Chromium is not installed: the browser test drives the system's headless Chromium "
    "(Debian package `chromium`, /usr/bin/chromium). Install it with "
    "`sudo apt-get install -y --no-install-recommends chromium` (or set CHROMIUM to the "
    "binary's path), then run `make test-browser`."
)


def _audit_report(directory: Path, model: str, status: int) -> Path:
    """Run ``pytest audits/`` on ``model`` with its report in ``directory``; the report."""
    command = [
        sys.executable, "-m", "pytest", "audits/", "--audit-model", model,
        "--audit-report-dir", str(directory), "-q", "-p", "no:cacheprovider",
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    output = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.returncode == status, f"audits on {model} exited {proc.returncode}\n{output}"
    report = directory / "report.html"
    assert report.is_file() and (directory / "records.json").is_file(), output
    return report


@pytest.fixture(scope="module")
def shortcut_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _audit_report(tmp_path_factory.mktemp("shortcut"), "shapes-cnn-shortcut", 1)


@pytest.fixture(scope="module")
def clean_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _audit_report(tmp_path_factory.mktemp("clean"), "shapes-cnn", 0)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not chromium:
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "playwright is not installed: `pip install -e '.[browser]'` (make test-browser "
            "installs it); the test uses the system's Chromium, no `playwright install`.",
            pytrace=False,
        )
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, headless=True)
        yield launched
        launched.close()


class Opened:
    """A report open in a fresh page, with every console error and page error it logged."""

    def __init__(self, browser: Browser, report: Path) -> None:
        self.page: Page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.page.set_default_timeout(5_000)  # a missing element fails in 5 s, not 30
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"failed: {r.url[:120]}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(report.as_uri(), wait_until="load")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console error: {message.text}")

    def visible(self, selector: str) -> int:
        return self.page.locator(f"{selector}:visible").count()


@pytest.fixture
def open_report(browser: Browser) -> Iterator[Callable[[Path], Opened]]:
    pages: list[Opened] = []

    def opener(report: Path) -> Opened:
        pages.append(Opened(browser, report))
        return pages[-1]

    yield opener
    for opened in pages:
        opened.page.context.close()


def _record_verdicts(record: dict[str, Any]) -> list[bool]:
    """The verdicts of one check record's gates: one per number of a record of several
    numbers without one bound, else the record's own, then one per class when the classes
    gate the test too (``details.gated_per_class``; otherwise they only inform).
    """
    values = record.get("values") or []
    if record.get("obtained") is None and record.get("unit") == "metric" and values:
        failing = set(record.get("failing") or [])
        return [i not in failing for i in range(len(values))]
    gated = bool((record.get("details") or {}).get("gated_per_class"))
    classes = (record.get("per_class") or []) if gated else []
    return [bool(record["passed"])] + [bool(c["passed"]) for c in classes]


def _gates(report: Path) -> dict[str, int]:
    """Failed and passed gate counts, from the ``records.json`` next to ``report``.

    Example: a test with metric m (failed), its baseline-gate record over m, and a check
    record (passed, no classes) has two gates: {"failed": 1, "passed": 1}.
    """
    doc = json.loads((report.parent / "records.json").read_text())
    verdicts: list[bool] = []
    for test in doc["tests"]:
        keys = {m["key"] for m in test["metrics"]}
        verdicts += [bool(m["passed"]) for m in test["metrics"]]
        for r in test["records"]:
            compared = (r.get("details") or {}).get("comparisons") or []
            gate = r["assertion"] == "assert_within_baseline" and bool(compared)
            if gate and all(c["key"] in keys for c in compared):
                continue  # the metrics above, already counted
            verdicts += _record_verdicts(r)
    return {"failed": verdicts.count(False), "passed": verdicts.count(True)}


def _failed_tests(report: Path) -> int:
    doc = json.loads((report.parent / "records.json").read_text())
    return sum(t["outcome"] == "failed" for t in doc["tests"])


@pytest.mark.parametrize("name", ["shortcut", "clean"])
def test_every_image_loads(request, open_report, name):
    opened = open_report(request.getfixturevalue(f"{name}_report"))
    page = opened.page
    # Open every section and bring each image into view, so lazily loaded ones load too.
    page.evaluate(
        """async () => {
            document.querySelectorAll("details").forEach(d => { d.open = true; });
            for (const img of document.images) {
                if (!img.complete) {
                    img.scrollIntoView();
                    await new Promise(r => requestAnimationFrame(r));
                }
            }
        }"""
    )
    page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=15_000)
    images = page.evaluate(
        "Array.from(document.images).map(i => [i.naturalWidth, i.src.slice(0, 80), i.alt])"
    )
    broken = [(src, alt) for width, src, alt in images if width <= 0]
    assert images, "the report shows no image"
    assert broken == [], f"{len(broken)} of {len(images)} images did not load: {broken[:5]}"


@pytest.mark.parametrize("name", ["shortcut", "clean"])
def test_nothing_logs_an_error_and_nothing_is_fetched(request, open_report, name):
    report = request.getfixturevalue(f"{name}_report")
    opened = open_report(report)
    opened.page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    opened.page.wait_for_timeout(200)  # let anything the opening triggered log its errors
    assert opened.errors == []
    # One self-contained file: the page itself is the only request (data: URLs make none).
    assert [u for u in opened.requests if u != report.as_uri()] == []


def test_the_failed_only_filter_shows_exactly_the_failing_gates(shortcut_report, open_report):
    from playwright.sync_api import expect

    expect.set_options(timeout=5_000)
    gates = _gates(shortcut_report)
    assert gates["failed"] > 0 and gates["passed"] > 0  # the run this test needs
    opened = open_report(shortcut_report)
    page, box = opened.page, opened.page.locator("#only-failed")
    rows = page.locator("#summary tr.gate")
    assert box.count() == 1, "no <input id=only-failed> in the report"
    assert box.get_attribute("type") == "checkbox"
    assert page.locator("#summary tr.gate.failed").count() == gates["failed"]
    assert page.locator("#summary tr.gate.passed").count() == gates["passed"]
    assert rows.count() == gates["failed"] + gates["passed"]
    tests_failed = _failed_tests(shortcut_report)
    sections = page.locator("details.test.failed")
    assert sections.count() == tests_failed
    assert all(sections.nth(i).get_attribute("open") is not None for i in range(tests_failed))

    # Checked on load (a gate failed): the failing rows and sections only.
    expect(box).to_be_checked()
    expect(page.locator("#summary tr.gate:visible")).to_have_count(gates["failed"])
    assert opened.visible("#summary tr.gate.failed") == gates["failed"]
    assert opened.visible("details.test.passed") == 0
    assert opened.visible("details.test.failed") == tests_failed

    box.click()  # all of them
    expect(box).not_to_be_checked()
    expect(page.locator("#summary tr.gate:visible")).to_have_count(rows.count())
    expect(page.locator("details.test:visible")).to_have_count(page.locator("details.test").count())

    box.click()  # and back
    expect(box).to_be_checked()
    expect(page.locator("#summary tr.gate:visible")).to_have_count(gates["failed"])
    assert opened.visible("#summary tr.gate.passed") == 0
    assert opened.visible("details.test.passed") == 0
    assert opened.errors == []


def test_the_shortcut_report_fits_the_size_budget(shortcut_report):
    size = shortcut_report.stat().st_size
    assert size <= SIZE_BUDGET, f"report.html is {size:,} bytes; the budget is {SIZE_BUDGET:,}"


def test_the_clean_report_shows_every_gate_passing(clean_report, open_report):
    gates = _gates(clean_report)
    assert gates["failed"] == 0 and gates["passed"] > 0  # the run this test needs
    opened = open_report(clean_report)
    page, box = opened.page, opened.page.locator("#only-failed")
    assert box.count() == 1, "no <input id=only-failed> in the report"
    assert not box.is_checked()
    assert page.locator("#summary tr.gate.failed").count() == 0
    assert page.locator("#summary tr.gate.passed").count() == gates["passed"]
    assert opened.visible("#summary tr.gate") == gates["passed"]
    assert page.locator("details.test.failed").count() == 0
    assert opened.visible("details.test") == page.locator("details.test").count() > 0
