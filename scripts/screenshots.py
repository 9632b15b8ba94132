"""Screenshots of the HTML report for the docs, rendered in headless Chromium.

    python scripts/screenshots.py                  # docs/report-shortcut.png, docs/report-clean.png
    python scripts/screenshots.py --height 1200 --out /tmp/shots

Runs the shipped audit suite twice, as ``make audit`` does, each into a fresh temporary
report folder: on ``shapes-cnn-shortcut`` (the audits fail: exit status 1) and on
``shapes-cnn`` (they pass). Each ``report.html`` is opened in the system's Chromium
(Debian's ``chromium``; playwright-python drives it, no ``playwright install``) at 1280 px
wide, as a reviewer first sees it, and the top of the page (1600 px by default) is saved as
a PNG. A PNG over the size limit (400 KB by default) is stored with a 256-colour palette,
which keeps text and heat maps readable.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import Browser, FloatRect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
RUNS = {"shortcut": ("shapes-cnn-shortcut", 1), "clean": ("shapes-cnn", 0)}
WIDTH = 1280


def audit_report(model: str, status: int, directory: Path) -> Path:
    """Run ``pytest audits/`` on ``model`` with its report in ``directory``; the report.

    Example:
        >>> audit_report("shapes-cnn", 0, Path(tempfile.mkdtemp())).name  # doctest: +SKIP
        'report.html'
    """
    command = [
        sys.executable, "-m", "pytest", "audits/", "--audit-model", model,
        "--audit-report-dir", str(directory), "-q", "-p", "no:cacheprovider",
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    report = directory / "report.html"
    if proc.returncode != status or not report.is_file():
        sys.exit(f"audits on {model} exited {proc.returncode} (expected {status}):\n{proc.stdout}")
    return report


def shrink(png: bytes, limit: int) -> bytes:
    """``png`` as is when it fits ``limit`` bytes, else re-encoded with a 256-colour palette.

    Example:
        >>> buf = io.BytesIO(); Image.new("RGB", (4, 4), "red").save(buf, "PNG")
        >>> shrink(buf.getvalue(), 10) != buf.getvalue()
        True
    """
    if len(png) <= limit:
        return png
    image = Image.open(io.BytesIO(png)).convert("RGB")
    out = io.BytesIO()
    image.quantize(256, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
    return out.getvalue()


def screenshot(browser: Browser, report: Path, height: int) -> bytes:
    """The top ``height`` pixels of ``report`` at :data:`WIDTH` px wide, as PNG bytes.

    Example:
        >>> screenshot(browser, Path("report.html"), 1600)[:4]  # doctest: +SKIP
        b'\\x89PNG'
    """
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    try:
        page.goto(report.as_uri(), wait_until="load")
        full = int(page.evaluate("document.documentElement.scrollHeight"))
        clip: FloatRect = {"x": 0, "y": 0, "width": WIDTH, "height": min(height, full)}
        return page.screenshot(full_page=True, clip=clip)
    finally:
        page.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for the PNGs")
    parser.add_argument("--height", type=int, default=1600, help="pixels from the top")
    parser.add_argument("--limit", type=int, default=400_000, help="bytes per PNG")
    args = parser.parse_args(argv)
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not chromium:
        sys.exit("Chromium is missing: sudo apt-get install -y --no-install-recommends chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        for name, (model, status) in RUNS.items():
            report = audit_report(model, status, Path(tmp) / name)
            png = shrink(screenshot(browser, report, args.height), args.limit)
            target = args.out / f"report-{name}.png"
            target.write_bytes(png)
            print(f"{target}: {len(png) / 1000:.0f} KB, from {model}")
        browser.close()


if __name__ == "__main__":
    main()
