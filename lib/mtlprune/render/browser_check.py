"""A built book checked in a real browser: every page loaded in headless Chromium (Debian's `chromium`), its DOM read
after the scripts ran, and the problems a reader would see listed.

Per page: JavaScript errors (uncaught exceptions and console errors), images whose file is missing, raw `{glue`
roles that were never resolved, tracebacks or warnings in the notebook outputs, machine paths in outputs, and math
left untypeset (TeX delimiters still in the text after MathJax ran). `check_book(html_dir)` returns the problems;
`python -m mtlprune.browser_check BOOK_HTML_DIR` prints them and exits non-zero when there are any.
"""

from __future__ import annotations

import html as htmllib
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
INSTALL = "apt-get install -y chromium (Debian; `make browser` does it)"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--window-size=1280,900", "--virtual-time-budget=5000",
         "--enable-logging=stderr", "--v=0", "--dump-dom"]
# Console lines Chromium prints for the page's own messages: "[...:INFO:CONSOLE(12)] "msg", source: file:///... (12)"
_CONSOLE = re.compile(r':CONSOLE(?:\(\d+\))?\]\s*"(?P<msg>.*?)",\s*source:\s*(?P<src>\S*)')
_ERROR_WORDS = ("Uncaught", "Error", "Failed to load", "Refused to")


@dataclass
class PageReport:
    page: str
    problems: list[str]


def find_browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError(f"no headless browser found ({', '.join(BROWSERS)}); install one: {INSTALL}")


def load(page: Path, browser: str, timeout: float = 60.0) -> tuple[str, str]:
    """The page's DOM after its scripts ran, and the browser's log."""
    proc = subprocess.run(["timeout", str(int(timeout)), browser, *FLAGS, page.resolve().as_uri()],
                          capture_output=True, text=True)
    if proc.returncode and not proc.stdout:
        raise RuntimeError(f"{browser} could not load {page} (exit {proc.returncode}): {proc.stderr[-500:]}")
    return proc.stdout, proc.stderr


def _text(dom: str) -> str:
    body = re.sub(r"<(script|style|mjx-assistive-mml|noscript)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return htmllib.unescape(re.sub(r"<[^>]+>", " ", body))


def problems_of(page: Path, dom: str, log: str) -> list[str]:
    out = []
    for m in _CONSOLE.finditer(log):
        if any(w in m.group("msg") for w in _ERROR_WORDS):
            out.append(f"JavaScript: {m.group('msg')[:200]} ({Path(urlparse(m.group('src')).path).name})")
    for src in re.findall(r"<img\b[^>]*\bsrc=\"([^\"]+)\"", dom, flags=re.I):
        if src.startswith(("data:", "http://", "https://")):
            continue
        target = (page.parent / unquote(urlparse(src).path)).resolve()
        if not target.exists():
            out.append(f"missing image: {src}")
    text = _text(dom)
    if "{glue" in text:
        out.append("raw {glue} role left in the text")
    outputs = " ".join(re.findall(r'<div class="[^"]*(?:output|stderr)[^"]*">(.*?)</div>', dom, flags=re.S))
    out_text = _text(outputs)
    for word in ("Traceback (most recent call last)", "Warning:", "UserWarning", "FutureWarning",
                 "DeprecationWarning"):
        if word in out_text:
            out.append(f"{word.rstrip(':')} in a notebook output")
    if re.search(r"/(?:work|home|tmp|root)/[\w.-]+/", out_text):
        out.append("a machine path in a notebook output")
    if re.search(r"\\\(|\\\[|\$\$", text):
        out.append("untypeset math (TeX delimiters left after MathJax ran)")
    return out


def check_book(html_dir: Path, browser: str | None = None) -> list[PageReport]:
    """Every HTML page of a built book (the search and index pages of Sphinx excepted), loaded and checked."""
    browser = browser or find_browser()
    pages = sorted(p for p in Path(html_dir).rglob("*.html")
                   if p.name not in ("search.html", "genindex.html") and "_static" not in p.parts)
    if not pages:
        raise FileNotFoundError(f"no HTML pages under {html_dir}: build the book first (python -m mtlprune study)")
    reports = []
    for page in pages:
        dom, log = load(page, browser)
        reports.append(PageReport(str(page.relative_to(html_dir)), problems_of(page, dom, log)))
    return reports


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    html_dir = Path(args[0]) if args else Path("book/_build/html")
    reports = check_book(html_dir)
    bad = [r for r in reports if r.problems]
    for r in reports:
        print(f"{'FAIL' if r.problems else 'ok  '} {r.page}")
        for p in r.problems:
            print(f"     {p}")
    print(f"{len(reports)} pages, {len(bad)} with problems")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
