"""The book (`make book`, book/conf.py), every page of it opened in a headless Chromium.

The book is built as `make book` builds it (``tools/course.py book``: incremental, so quick after
`make test`'s book part), served from a loopback port, and each HTML page is loaded: every local
link, image, script and stylesheet must answer 200, no request may leave the machine (the book
works offline), and the lessons must be there, in order, with their stored figures, highlighted
code and typeset math.

Needs Debian's Chromium and PyPI's playwright (its own browser download is not needed):
``apt-get install -y chromium`` and ``pip install playwright``; skipped without them.
"""

import functools
import http.server
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import nbformat
import pytest

# Tests that start kernels, JupyterLab or Chromium share one pytest-xdist worker (--dist loadgroup):
# run side by side on two cores, the grader's and the browser's tests failed each other (seen once).
pytestmark = pytest.mark.xdist_group("kernels")

REPO = Path(__file__).resolve().parent.parent
HTML = REPO / "book" / "_build" / "html"
LESSONS = sorted((REPO / "notebooks").glob("0*.ipynb"))
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
BUILD_TIMEOUT_S = 900  # a first build reads every lesson and imports every module of cnnlib
RENDER_TIMEOUT_MS = 20_000  # MathJax and the search index, on a busy machine
# What a page may load besides the book's own files: nothing from a network.
NOT_A_NETWORK = ("data:", "blob:", "about:")

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install playwright")
if not CHROMIUM.exists():
    pytest.skip(f"needs Chromium at {CHROMIUM}: apt-get install -y chromium", allow_module_level=True)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the standard library's name)
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a page left before all its files arrived: the browser closed the connection


@pytest.fixture(scope="module")
def book_url():
    """The book, built as `make book` builds it, served on a loopback port that the server bound
    itself (port 0, read back), for as long as the module's tests run. Test processes running
    beside each other (pytest-xdist) build one after the other, under a lock."""
    import fcntl  # POSIX only, like the Chromium this module needs

    HTML.mkdir(parents=True, exist_ok=True)
    with (HTML.parent / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        build = subprocess.run([sys.executable, "tools/course.py", "--venv", sys.prefix, "book"], cwd=REPO,
                               capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert build.returncode == 0, f"the book did not build:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    server = QuietServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=HTML))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def png_outputs(lesson: Path) -> int:
    """How many PNG figures the committed lesson stores in its outputs."""
    nb = nbformat.read(lesson, as_version=4)
    return sum("image/png" in output.get("data", {}) for cell in nb.cells if cell.cell_type == "code"
               for output in cell.outputs)


def test_every_page_loads_offline_with_no_broken_local_reference(book_url, browser):
    pages = sorted(path.relative_to(HTML).as_posix() for path in HTML.rglob("*.html")
                   if not path.relative_to(HTML).parts[0].startswith("_"))
    assert len(pages) > len(LESSONS), f"too few pages in {HTML}: {pages}"
    page = browser.new_page()
    outside: list[str] = []
    page.on("request", lambda request: None if request.url.startswith((book_url, *NOT_A_NETWORK))
            else outside.append(request.url))
    checked: dict[str, int] = {}
    broken: list[str] = []
    for name in pages:
        response = page.goto(f"{book_url}/{name}", wait_until="load")
        assert response is not None and response.status == 200, f"{name}: {response and response.status}"
        if name == "index.html":  # the top of the output only points into the book
            page.wait_for_url(f"{book_url}/book/index.html")
            continue
        references = page.eval_on_selector_all(
            "a[href], img[src], script[src], link[href]", "els => els.map(e => e.href || e.src)")
        for reference in references:
            target = urldefrag(reference).url
            if not target.startswith(book_url):
                continue  # an external link the reader may follow: nothing the page loads
            if target not in checked:
                checked[target] = status(target)
            if checked[target] != 200:
                broken.append(f"{name} -> {urlsplit(target).path}: HTTP {checked[target]}")
        unloaded = page.eval_on_selector_all("img", "imgs => imgs.filter(i => !i.complete || i.naturalWidth === 0)"
                                                    ".map(i => i.src)")
        broken += [f"{name}: image not shown {src}" for src in unloaded]
    assert not broken, "broken local references:\n" + "\n".join(broken)
    assert not outside, "requests that left the machine (the book must work offline):\n" + "\n".join(outside)


def test_the_lessons_in_order_with_their_figures_code_and_math(book_url, browser):
    page = browser.new_page()
    page.goto(f"{book_url}/book/index.html")
    navigation = page.eval_on_selector_all("nav a.reference.internal", "links => links.map(a => a.href)")
    lessons_in_navigation = [link.rsplit("/", 1)[-1] for link in navigation if "/notebooks/" in link]
    assert lessons_in_navigation == [f"{lesson.stem}.html" for lesson in LESSONS]
    for lesson in LESSONS:
        page.goto(f"{book_url}/notebooks/{lesson.stem}.html", wait_until="load")
        highlighted = page.locator("div.highlight pre span")
        assert highlighted.count() > 10, f"{lesson.stem}: its code is not highlighted"
        figures = page.eval_on_selector_all(
            "img", "imgs => imgs.filter(i => i.src.endsWith('.png') && i.naturalWidth > 0).length")
        assert figures == png_outputs(lesson), f"{lesson.stem}: {figures} figures shown, {png_outputs(lesson)} stored"
        if "$" in "".join(cell.source for cell in nbformat.read(lesson, as_version=4).cells
                          if cell.cell_type == "markdown"):
            page.wait_for_selector("mjx-container", timeout=RENDER_TIMEOUT_MS)  # the book's own MathJax


def test_a_stored_widget_becomes_a_note_and_search_finds_a_lesson(book_url, browser):
    page = browser.new_page()
    page.goto(f"{book_url}/notebooks/01_convolution_arithmetic.html")
    assert "static page cannot embed it" in page.locator("div.admonition.note").all_inner_texts()[0]
    page.goto(f"{book_url}/search.html?q=bottleneck")
    page.wait_for_selector("ul.search li a", timeout=RENDER_TIMEOUT_MS)
    found = page.eval_on_selector_all("ul.search li a", "links => links.map(a => a.href)")
    assert any("/notebooks/" in link for link in found), found
