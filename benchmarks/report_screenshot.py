"""Screenshot of the default benchmark's report, kept in ``docs/report.png`` (the README shows it).

    OMP_NUM_THREADS=1 unlearnkit bench --quick --out /tmp/report-run
    OMP_NUM_THREADS=1 python benchmarks/report_screenshot.py /tmp/report-run docs/report.png

Builds ``RESULTS_DIR/report.html`` (overwriting it), opens it in the system Chromium through
Python Playwright (``executable_path``; never ``playwright install``), prints any page or console
error, and saves a full-page screenshot 1280 px wide (256-colour PNG). Needs ``playwright`` (pip) and
``chromium`` (apt).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def shrink(png: Path) -> None:
    """A 256-colour palette, no dithering: the figures' flat colours survive, the file is ~3× smaller."""
    from PIL import Image

    with Image.open(png) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(png, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a folder written by `unlearnkit bench --out`")
    parser.add_argument("png", type=Path, nargs="?", default=Path("docs/report.png"))
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from unlearnkit.report import build_report

    page_file = build_report(args.results, args.results / "report.html", force=True)
    executable = chromium_path()
    if executable is None:
        print("no chromium found (apt-get install -y chromium)", file=sys.stderr)
        return 1
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": args.width, "height": 900})
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
        page.goto(page_file.resolve().as_uri())
        args.png.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.png), full_page=True)
        browser.close()
    shrink(args.png)
    for error in errors:
        print(error, file=sys.stderr)
    print(f"report: {page_file}\nscreenshot: {args.png}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
