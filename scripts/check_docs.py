"""Check the built docs: they load no remote script, and their math typesets with no network.

    python scripts/check_docs.py docs/_build/html            # what `make docs-check` runs
    python scripts/check_docs.py docs/_build/html --screenshot vae.html shot.png

1. Every ``.html`` page is read for ``<script src>`` and ``<link href>`` pointing off the
   machine (``http:``, ``https:``, ``//host``): MathJax must come from ``_static/mathjax``;
   every stylesheet the theme ships (``_static/**/*.css``) for ``url(...)`` and ``@import``
   pointing off the machine (a web font from a CDN, say).
2. Every page with math is opened from disk (``file://``, so no server and no network) in
   headless Chromium (Debian's ``chromium``), and the DOM after its scripts ran is read:
   each ``math`` element must hold a typeset ``mjx-container``, no MathJax error may show,
   and no raw ``\\[`` or ``\\(`` may be left in the text a reader sees.

3. Every chapter (``chapters/*.html``) hides its solutions until the reader opens them: a
   code cell tagged ``solution`` is rendered inside MyST-NB's collapsed ``hide-cell`` block,
   and a solution's prose (``<summary>Solution``) sits in a closed ``<details>``.

Without a browser the second check is skipped with a message (an error with
``--require-browser``, which CI passes). Exit status 1 on any failure.
"""
from __future__ import annotations

import argparse
import html
import pathlib
import re
import shutil
import subprocess
import sys

REMOTE = re.compile(r"""<(?:script|link)\b[^>]*?\b(?:src|href)\s*=\s*["']?\s*"""
                    r"""((?:https?:)?//[^"'\s>]+)""", re.I)
CSS_REMOTE = re.compile(r"""(?:url\(|@import)\s*["']?\s*((?:https?:)?//[^"')\s;]+)""", re.I)
MATH = re.compile(r"""class="[^"]*\bmath\b""")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def remote_references(page_html):
    """The off-machine addresses of the scripts and stylesheets a page loads."""
    return REMOTE.findall(page_html)


def remote_css_references(css):
    """The off-machine addresses a stylesheet loads (fonts, other stylesheets)."""
    return CSS_REMOTE.findall(css)


SOLUTION_CELL = re.compile(r'<div class="cell ([^"]*\btag_solution\b[^"]*)"[^>]*>'
                           r"\s*(<details[^>]*>)?")
SUMMARY = re.compile(r"(<details[^>]*>)?\s*<summary>\s*Solution", re.I)


def solution_problems(page_html):
    """How the solutions of a rendered chapter fail to be hidden until opened."""
    problems = []
    for classes, details in SOLUTION_CELL.findall(page_html):
        if "tag_hide-cell" not in classes.split() or not details or " open" in details:
            problems.append(f"a solution's code cell is not collapsed ({classes})")
    for details in SUMMARY.findall(page_html):
        if not details or " open" in details:
            problems.append("a solution's text is not in a closed <details>")
    return problems


def visible_text(dom):
    """The text of a page as a reader sees it: no tags, scripts, styles or MathJax's
    hidden assistive copy; entities decoded."""
    dom = re.sub(r"(?is)<(script|style|mjx-assistive-mml)\b.*?</\1>", " ", dom)
    return html.unescape(re.sub(r"(?s)<[^>]+>", " ", dom))


def typeset_problems(dom):
    """What is wrong with the math of a rendered DOM: raw TeX delimiters left in the text,
    math elements that MathJax did not replace, MathJax's own error marks."""
    problems = []
    text = visible_text(dom)
    for delim in ("\\[", "\\(", "$$"):
        if delim in text:
            i = text.index(delim)
            problems.append(f"raw {delim!r} in the text: ...{text[i:i + 60].strip()!r}")
    wanted, got = len(MATH.findall(dom)), dom.count("<mjx-container")
    if got < wanted:
        problems.append(f"{wanted} math elements but {got} typeset")
    if "data-mjx-error" in dom or "<mjx-merror" in dom:
        problems.append("MathJax reported an error (red TeX in the page)")
    return problems


def find_browser():
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _browser_args(browser):
    # --no-sandbox: CI runs as root, where Chromium refuses its sandbox
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--virtual-time-budget=20000"]


def render(browser, page, timeout=60):
    """The DOM of ``page`` (a path) after its scripts ran, from headless Chromium."""
    url = pathlib.Path(page).resolve().as_uri()
    out = subprocess.run(_browser_args(browser) + ["--dump-dom", url],
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0 or "<html" not in out.stdout:
        raise RuntimeError(f"{browser} failed on {page}: {out.stderr[-500:]}")
    return out.stdout


def screenshot(browser, page, png, width=1000, height=1400, timeout=60):
    png = pathlib.Path(png).resolve()
    subprocess.run(_browser_args(browser) + [f"--window-size={width},{height}",
                                             f"--screenshot={png}",
                                             pathlib.Path(page).resolve().as_uri()],
                   capture_output=True, timeout=timeout, check=True)
    return png


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("html_dir", type=pathlib.Path)
    parser.add_argument("--require-browser", action="store_true",
                        help="fail, rather than skip, when no Chromium is installed")
    parser.add_argument("--screenshot", nargs=2, metavar=("PAGE", "PNG"),
                        help="also save a screenshot of PAGE (relative to html_dir)")
    args = parser.parse_args(argv)
    pages = sorted(p for p in args.html_dir.rglob("*.html") if "_static" not in p.parts)
    if not pages:
        print(f"no pages under {args.html_dir}: build the docs first (make docs)")
        return 1
    failures = []
    for page in pages:
        for url in remote_references(page.read_text(encoding="utf-8")):
            failures.append(f"{page.relative_to(args.html_dir)}: loads {url}")
    styles = sorted((args.html_dir / "_static").rglob("*.css"))
    for css in styles:
        for url in remote_css_references(css.read_text(encoding="utf-8", errors="replace")):
            failures.append(f"{css.relative_to(args.html_dir)}: loads {url}")
    print(f"{len(pages)} pages and {len(styles)} stylesheets: "
          f"{'no' if not failures else len(failures)} remote references")

    chapters = [p for p in pages if p.parent.name == "chapters"]
    for page in chapters:
        for problem in solution_problems(page.read_text(encoding="utf-8")):
            failures.append(f"{page.relative_to(args.html_dir)}: {problem}")
    print(f"{len(chapters)} chapters: solutions checked collapsed")

    browser = find_browser()
    if browser is None:
        print("SKIPPED the browser check: no chromium (apt-get install chromium)")
        if args.require_browser:
            failures.append("no browser, and --require-browser")
    else:
        with_math = [p for p in pages if MATH.search(p.read_text(encoding="utf-8"))]
        for page in with_math:
            for problem in typeset_problems(render(browser, page)):
                failures.append(f"{page.relative_to(args.html_dir)}: {problem}")
        print(f"{len(with_math)} pages with math opened offline in {browser}")
        if args.screenshot:
            page, png = args.screenshot
            print("screenshot:", screenshot(browser, args.html_dir / page, png))
    for failure in failures:
        print("FAIL", failure)
    print("docs check:", "failed" if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
