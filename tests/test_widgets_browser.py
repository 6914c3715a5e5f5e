"""The conv explorer in a real JupyterLab, driven by a headless Chromium.

Needs Debian's Chromium and PyPI's playwright (its own browser download is not needed):
``apt-get install -y chromium`` and ``pip install playwright``; skipped without them.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent  # the kernel imports this checkout's cnnlib
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
START_TIMEOUT_S = 60  # the server, and then the kernel, each get this long to come up

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install playwright")
if not CHROMIUM.exists():
    pytest.skip(f"needs Chromium at {CHROMIUM}: apt-get install -y chromium", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer {url} within {START_TIMEOUT_S} s:\n{log.read_text()}")


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab serving tmp_path/root with explorer.ipynb; yields its base URL."""
    root, config = tmp_path / "root", tmp_path / "config"
    root.mkdir()
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("from cnnlib.widgets import conv_explorer\nconv_explorer()")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(nb, root / "explorer.ipynb")
    settings = config / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)  # no news or update toasts over the notebook
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True})
    )
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "OMP_NUM_THREADS": "1",
    }
    log = tmp_path / "jupyterlab.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
             "--ServerApp.port_retries=0", "--IdentityProvider.token=", "--ServerApp.password=",
             f"--ServerApp.root_dir={root}", *(["--allow-root"] if os.geteuid() == 0 else [])],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_server(f"{url}/api/status", server, log)
        yield url
    finally:
        server.terminate()  # JupyterLab shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        try:
            os.killpg(server.pid, signal.SIGKILL)  # any kernel left in the server's own group
        except ProcessLookupError:
            pass


def test_slider_changes_the_formula_in_jupyterlab(lab):
    expect = sync_api.expect
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(START_TIMEOUT_S * 1000)
            page.goto(f"{lab}/lab/tree/explorer.ipynb")
            editor = page.locator(".jp-Notebook .jp-Cell .cm-content").first
            editor.click()
            page.keyboard.press("Shift+Enter")  # queued until the kernel is up

            formula = page.locator(".conv-formula")
            expect(formula).to_contain_text("output size 5", timeout=2 * START_TIMEOUT_S * 1000)
            expect(formula).to_contain_text("(7 - 3 + 2*0) / 1 + 1 = 5")
            window = page.locator("img.conv-window")
            expect(window).to_be_visible()
            first_image = window.get_attribute("src")

            stride = page.locator(".widget-hslider", has_text="stride s")
            stride.locator(".noUi-handle").click()
            page.keyboard.press("ArrowRight")
            expect(stride.locator(".widget-readout")).to_have_text("2")
            expect(formula).to_contain_text("output size 3")
            expect(formula).to_contain_text("(7 - 3 + 2*0) / 2 + 1 = 3")
            expect(window).not_to_have_attribute("src", first_image)

            kernel = page.locator(".widget-hslider", has_text="kernel k")
            kernel.locator(".noUi-handle").click()
            for _ in range(6):  # 3 -> 9, larger than the 7 inputs
                page.keyboard.press("ArrowRight")
            expect(formula).to_contain_text("impossible: kernel 9 (effective 9 with dilation 1)")
        finally:
            browser.close()
