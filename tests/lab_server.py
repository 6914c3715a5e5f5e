"""A JupyterLab server and a headless Chromium, for the tests that drive the lessons in a browser.

Importing this module skips the importing test module where Debian's Chromium or PyPI's
playwright (its own browser download is not needed) is missing:
``apt-get install -y chromium`` (``make browser``) and ``pip install playwright``.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent  # the kernels import this checkout's cnnlib
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
START_TIMEOUT_S = 60  # the server, and then the kernel, each get this long to come up
QUIET_SETTINGS = {  # user settings, by plugin id
    "@jupyterlab/apputils-extension:notification":  # no news or update toasts
        {"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},  # every cell in the DOM
}

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install playwright")
if not CHROMIUM.exists():
    pytest.skip(f"needs Chromium at {CHROMIUM}: apt-get install -y chromium (make browser)", allow_module_level=True)


def write_settings(config: Path, settings: Mapping[str, dict]) -> None:
    """Each plugin's settings as its user settings file under the JupyterLab config folder."""
    for plugin_id, values in settings.items():
        package, plugin = plugin_id.split(":")
        file = config / "lab" / "user-settings" / package / f"{plugin}.jupyterlab-settings"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(values))


def server_url(server: subprocess.Popen, runtime: Path, log: Path) -> str:
    """The URL that JupyterLab writes to its runtime file once it listens, after it answers."""
    record = runtime / f"jpserver-{server.pid}.json"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with {server.returncode}:\n{log.read_text()}")
        try:
            url = json.loads(record.read_text())["url"].rstrip("/")
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as response:
                if response.status == 200:
                    return url
        except (OSError, ValueError, KeyError):
            pass  # not written yet, half written, or not answering yet
        time.sleep(0.5)
    pytest.fail(f"JupyterLab did not come up within {START_TIMEOUT_S} s:\n{log.read_text()}")


@contextmanager
def jupyterlab(root: Path, home: Path, env: Mapping[str, str],
               settings: Mapping[str, dict] = QUIET_SETTINGS) -> Iterator[str]:
    """A JupyterLab on 127.0.0.1, at a free port it binds itself, without token or password;
    yields its base URL, and on exit stops it and every kernel it started.

    Args:
        root: the folder it serves.
        home: a folder of its own for its config, its runtime files and its log.
        env: environment for the server and its kernels, over this process's.
        settings: its user settings, by plugin id.
    """
    config, runtime, log = home / "config", home / "runtime", home / "jupyterlab.log"
    write_settings(config, settings)
    server_env = {
        **os.environ, **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(runtime),
    }
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", "--port=0",
             "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
             *(["--allow-root"] if os.geteuid() == 0 else [])],
            env=server_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        yield server_url(server, runtime, log)
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


@contextmanager
def chromium_page() -> Iterator[sync_api.Page]:
    """A page of a headless Chromium, 1400 x 1000, whose actions wait up to START_TIMEOUT_S."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(START_TIMEOUT_S * 1000)
            yield page
        finally:
            browser.close()
