"""The rendered book, opened in a real browser (headless Chromium).

The book is built with Jupyter Book, warnings as errors (``-W -n --keep-going``),
into a temporary directory, served on 127.0.0.1, and every page of the table of
contents is opened in headless Chromium. On every page each image must have
decoded (``naturalWidth > 0``) and every same-site link, stylesheet and script must
point to a file of the build (and a ``#fragment`` to an id in it). Equations must
have been typeset by the MathJax copy shipped with the build (``mjx-container``
elements, no raw ``\\(``, ``\\[`` or ``$$`` left in the text; the browser reaches no
host but the local server, so a MathJax loaded from the internet fails), and no page
may show a machine path under ``/tmp/`` or an nbval marker (``NBVAL``). On every
chapter page (``book/NN-slug.html``) the claims table must be there, the parameters
cell must be shown once, no code cell may run off the page (its lines wrap), and no
cell output may show an error or a traceback. Screenshots of the landing page and
of the first chapter go to ``tests/artifacts/``.

Skipped, with the reason, where Chromium, chromedriver, selenium or Jupyter Book is
missing (on Debian: ``apt-get install -y chromium chromium-driver``). Nothing is
downloaded: selenium drives the system's chromedriver, and the browser resolves no
host but 127.0.0.1.

To check a book that is already built instead of building one, set
``MSNN_BOOK_HTML`` to its ``_build/html`` folder.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from msnn.book.chapters import toc_documents

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")
CHAPTER = re.compile(r"book/\d\d-[^/]+$")
# Every document of the table of contents is a page of the book.
PAGES = sorted(toc_documents(ROOT))


def _first(*candidates):
    for c in candidates:
        path = shutil.which(c) if c and not os.path.isabs(c) else c
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


CHROMIUM = _first(os.environ.get("CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = _first(os.environ.get("CHROMEDRIVER"), "/usr/bin/chromedriver", "chromedriver")
JUPYTER_BOOK = _first(os.path.join(os.path.dirname(sys.executable), "jupyter-book"), "jupyter-book")

try:
    import selenium  # noqa: F401
except ImportError:  # pragma: no cover - depends on the machine
    selenium = None

_missing = [what for what, ok in (
    ("Chromium (apt-get install -y chromium)", CHROMIUM),
    ("chromedriver (apt-get install -y chromium-driver)", CHROMEDRIVER),
    ("selenium (pip install -e '.[test]')", selenium),
    ("Jupyter Book (pip install -e '.[book]')", JUPYTER_BOOK or os.environ.get("MSNN_BOOK_HTML")),
) if not ok]
pytestmark = pytest.mark.skipif(bool(_missing), reason="browser check skipped, missing: " + "; ".join(_missing))


# ------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def build():
    """Build the book into a temporary directory; yield (exit code, log, html folder)."""
    given = os.environ.get("MSNN_BOOK_HTML")
    if given:
        yield 0, f"(using the build in {given})", os.path.abspath(given)
        return
    with tempfile.TemporaryDirectory(prefix="msnn-book-") as out:
        cmd = [JUPYTER_BOOK, "build", ROOT, "--path-output", out, "-W", "-n", "--keep-going"]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
        yield proc.returncode, proc.stdout + proc.stderr, os.path.join(out, "_build", "html")


@pytest.fixture(scope="module")
def site(build):
    """Serve the built HTML on 127.0.0.1 at a free port; yield (base URL, html folder)."""
    html = build[2]
    if not os.path.exists(os.path.join(html, "index.html")):
        pytest.fail(f"the build wrote no HTML:\n{build[1][-3000:]}")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=html))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", html
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven through the system's chromedriver, with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="msnn-chromium-") as profile:
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,1000", f"--user-data-dir={profile}",
                     # the book is checked on its own: no host other than the local server resolves
                     "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
            opts.add_argument(flag)
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(30)
        try:
            yield driver
        finally:
            driver.quit()


# ---------------------------------------------------------------- the checks
_PAGE_STATE = """
const out = {images: [], refs: [], claims: 0, claimRows: 0, errorAreas: 0, errorTexts: []};
for (const img of document.images)
  out.images.push({src: img.currentSrc || img.src, complete: img.complete, width: img.naturalWidth});
for (const a of document.querySelectorAll('a[href]')) out.refs.push(a.href);
for (const l of document.querySelectorAll('link[href]')) out.refs.push(l.href);
for (const s of document.querySelectorAll('script[src]')) out.refs.push(s.src);
const tables = document.querySelectorAll('table.msnn-claims');
out.claims = tables.length;
for (const t of tables) out.claimRows += t.querySelectorAll('tbody tr').length;
out.errorAreas = document.querySelectorAll(
  '.output.error, .output_error, .output.traceback, .cell_output .traceback, ' +
  '.cell_output [class*="ipythontb"], .cell_output .ansi-red-intense-fg').length;
for (const o of document.querySelectorAll('.cell_output, .output')) {
  const t = o.innerText || '';
  const m = t.match(/Traceback \\(most recent call last\\)|^\\s*\\w*(Error|Exception): .*$/m);
  if (m) out.errorTexts.push(m[0].slice(0, 200));
}
// Math: what Sphinx marked as math, what MathJax typeset, and TeX left as text outside code.
out.mathNodes = document.querySelectorAll('.math, span.math, div.math').length;
out.mathjax = document.querySelectorAll('mjx-container').length;
const prose = document.body.cloneNode(true);
for (const e of prose.querySelectorAll('pre, code, script, style, textarea, mjx-container, .highlight')) e.remove();
const rawTex = (prose.textContent || '').match(/.{0,40}(\\\\\\(|\\\\\\[|\\$\\$|\\\\begin\\{).{0,40}/g) || [];
out.rawTex = rawTex.slice(0, 5);
const text = document.body.textContent || '';
out.tmpPaths = (text.match(/\\S*\\/tmp\\/\\S*/g) || []).slice(0, 5);
out.nbval = (text.match(/.{0,30}NBVAL.{0,30}/g) || []).slice(0, 5);
// Code cells: the parameters cell shown once; no input running off the page.
out.parameterCells = 0;
out.wideInputs = [];
for (const cell of document.querySelectorAll('div.cell')) {
  const input = cell.querySelector('div.cell_input pre');
  if (!input) continue;
  if (/^\\s*profile\\s*=/m.test(input.textContent) && /^\\s*seed\\s*=/m.test(input.textContent)) out.parameterCells++;
  if (input.scrollWidth > input.clientWidth + 2) out.wideInputs.push(input.textContent.trim().split('\\n')[0].slice(0, 80));
}
return out;
"""

# Resolves once MathJax has typeset the page (at once where the page loads no MathJax).
_MATHJAX_DONE = """
const done = arguments[arguments.length - 1];
const mj = window.MathJax;
if (!document.querySelector('script[src*="mathjax"]')) { done('none'); return; }
if (mj && mj.startup && mj.startup.promise) { mj.startup.promise.then(() => done('typeset'), () => done('error')); return; }
done('not loaded');
"""


def _ids(path: str, cache: dict) -> set:
    if path not in cache:
        with open(path, encoding="utf-8", errors="replace") as fh:
            cache[path] = set(re.findall(r"""\bid=["']([^"']+)["']""", fh.read()))
    return cache[path]


def _broken_refs(refs, base: str, html: str, cache: dict) -> list[str]:
    """Same-site URLs that do not resolve to a file of the build (or to an id in it)."""
    bad = []
    for url in sorted(set(refs)):
        if not url.startswith(base):
            continue  # another site (the repository, a CDN): not part of this build
        parts = urllib.parse.urlsplit(url)
        rel = urllib.parse.unquote(parts.path[len(urllib.parse.urlsplit(base).path):])
        path = os.path.join(html, rel)
        if rel == "" or rel.endswith("/"):
            path = os.path.join(path, "index.html")
        if not os.path.isfile(path):
            bad.append(f"{url} (no file {rel or 'index.html'})")
        elif parts.fragment and path.endswith(".html"):
            frag = urllib.parse.unquote(parts.fragment)
            if frag not in _ids(path, cache):
                bad.append(f"{url} (no id #{frag} in {rel})")
    return bad


def page_problems(driver, base: str, html: str, page: str, cache: dict | None = None) -> list[str]:
    """Open ``page`` (a document name such as ``book/04-regression``) and list what is wrong."""
    from selenium.common.exceptions import TimeoutException

    cache = {} if cache is None else cache
    rel = f"{page}.html"
    if not os.path.isfile(os.path.join(html, rel)):
        return [f"{rel} was not built"]
    try:
        driver.get(base + rel)
    except TimeoutException:
        return [f"{rel} did not finish loading in {60} s"]
    deadline = time.time() + 20
    while time.time() < deadline:  # images decode after the load event in some cases
        if driver.execute_script("return Array.from(document.images).every(i => i.complete)"):
            break
        time.sleep(0.2)
    mathjax = "not loaded"
    while time.time() < deadline:  # the deferred MathJax script runs after the load event
        mathjax = driver.execute_async_script(_MATHJAX_DONE)
        if mathjax != "not loaded":
            break
        time.sleep(0.2)
    state = driver.execute_script(_PAGE_STATE)
    problems = [f"image not displayed: {i['src']}" for i in state["images"]
                if not i["complete"] or i["width"] <= 0]
    problems += [f"broken link: {b}" for b in _broken_refs(state["refs"], base, html, cache)]
    if state["mathNodes"] and (mathjax != "typeset" or not state["mathjax"]):
        problems.append(f"{state['mathNodes']} equation(s) not typeset by MathJax (MathJax: {mathjax}, "
                        f"{state['mathjax']} mjx-container element(s))")
    problems += [f"raw TeX in the text: {t!r}" for t in state["rawTex"]]
    problems += [f"a machine path in the page: {t!r}" for t in state["tmpPaths"]]
    problems += [f"an nbval marker in the page: {t!r}" for t in state["nbval"]]
    if CHAPTER.fullmatch(page):
        if state["parameterCells"] != 1:
            problems.append(f"the parameters cell is shown {state['parameterCells']} times, not once")
        problems += [f"a code cell runs off the page: {t!r}" for t in state["wideInputs"]]
        if state["claims"] < 1 or state["claimRows"] < 1:
            problems.append("no claims table (table.msnn-claims with rows)")
        if state["errorAreas"]:
            problems.append(f"{state['errorAreas']} error output area(s)")
        problems += [f"error text in an output: {t!r}" for t in dict.fromkeys(state["errorTexts"])]
        if not state["images"]:
            problems.append("no figure at all")
    return problems


def _screenshot(driver, name: str) -> None:
    os.makedirs(ARTIFACTS, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(800, min(int(height), 12000)))
    try:
        driver.save_screenshot(os.path.join(ARTIFACTS, name))
    finally:
        driver.set_window_size(1280, 1000)


# ---------------------------------------------------------------------- tests
def test_book_builds_without_warnings(build):
    rc, log, _ = build
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    assert rc == 0, "jupyter-book build -W -n failed:\n" + "\n".join(warnings[:40] or log.splitlines()[-40:])


def test_there_are_chapter_pages():
    assert any(CHAPTER.fullmatch(p) for p in PAGES), "_toc.yml lists no chapter book/NN-slug"


@pytest.mark.parametrize("page", PAGES)
def test_page_in_browser(page, site, browser):
    base, html = site
    problems = page_problems(browser, base, html, page)
    if page == "book/intro":
        _screenshot(browser, "landing.png")
    elif page == next((p for p in PAGES if CHAPTER.fullmatch(p)), None):
        _screenshot(browser, f"{os.path.basename(page)}.png")
    assert not problems, f"{page}.html:\n  " + "\n  ".join(problems)


def test_landing_page_links_every_chapter(site, browser):
    """The landing page's chapter map and scorecard link every chapter of the book."""
    base, html = site
    browser.get(base + "book/intro.html")
    hrefs = browser.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
    linked = {urllib.parse.urlsplit(h).path.rsplit("/", 1)[-1] for h in hrefs if h.startswith(base)}
    missing = [p for p in PAGES if CHAPTER.fullmatch(p) and f"{os.path.basename(p)}.html" not in linked]
    assert not missing, f"the landing page does not link {missing}"
