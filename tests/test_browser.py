"""End to end in a browser: JupyterLab serves notebook 02, headless Chromium runs it and moves the
sparsity slider with the keyboard and the mouse.

The notebook tests check the slider's callback from Python. Only a browser shows what a student
sees: that the ipywidgets extension renders the explorer in JupyterLab, that the slider answers a
key press, and that the kernel's new readout and figure reach the page. The browser is Debian's
Chromium (``.ci/run`` installs it), driven by Playwright; Playwright's own browsers are never used.
Screenshots land in ``build/artifacts/browser/`` (or ``$LTHKIT_BROWSER_ARTIFACTS``), with
JupyterLab's log and a screenshot of the page when the test fails.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nbformat
import papermill
import pytest

from lthkit.data import data_root

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:
    sync_playwright = None

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "02_pruning_by_magnitude.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("LTHKIT_BROWSER_ARTIFACTS", REPO / "build" / "artifacts" / "browser"))
# As root on a machine whose network is closed: no sandbox, and no background connections to refuse.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
READOUT = re.compile(r"sparsity (\d+)%: ([\d.]+)% of weights left, test accuracy ([\d.]+)%")
SHOTS = ("explorer-before.png", "explorer-after-keys.png", "explorer-after-click.png", "jupyterlab.png",
         "failure.png", "jupyterlab.log")
SERVER_START_S, RUN_ALL_S, REDRAW_S = 60, 150, 30


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium and Playwright to drive it. Without them the test skips on a workstation,
    but fails in CI, whose set-up (``.ci/run``) installs the browser, so that a broken install shows."""
    missing = None
    if sync_playwright is None:
        missing = "playwright is not installed: pip install -c constraints.txt -e '.[course,test,sweep]'"
    elif not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), as .ci/run does"
    if missing and os.environ.get("CI"):
        pytest.fail(missing)
    if missing:
        pytest.skip(missing)
    return CHROMIUM


@dataclass
class Lab:
    base: str
    token: str
    notebook_url: str
    log: Path

    def api(self, path: str):
        with urllib.request.urlopen(f"{self.base}/api/{path}?token={self.token}", timeout=5) as r:
            return json.load(r)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def lab(chromium, tmp_path_factory, mnist_small):
    """JupyterLab on loopback serving a copy of notebook 02 at the ``test`` budget, stripped of its
    committed outputs and widget state so that everything the page shows comes from the live kernel.

    Jupyter's and IPython's settings live in a fresh folder, so nothing of the user's (or of
    ``make test``'s IPython start-up file) leaks in; the ipywidgets extension is found in the
    virtualenv's ``share/jupyter``. The kernel reads the real MNIST where the tests read it
    (``mnist_small`` skips when it is missing).
    """
    root = tmp_path_factory.mktemp("browser")
    served = root / "notebooks" / NOTEBOOK.name
    served.parent.mkdir()
    papermill.execute_notebook(str(NOTEBOOK), str(served), parameters={"budget": "test"}, prepare_only=True,
                               progress_bar=False)
    nb = nbformat.read(served, as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, served)

    home = root / "jupyter"
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel must draw inline
    env.update(JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), IPYTHONDIR=str(home / "ipython"),
               LTHKIT_DATA=str(data_root().resolve()))
    # Keep the news and update prompts (which would need the network) out of the page and screenshots.
    notification = home / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')

    port, token = _free_port(), secrets.token_hex(16)
    log_path = root / "jupyterlab.log"
    log = open(log_path, "wb")
    command = [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", "--LabApp.extension_manager=readonly"]
    if os.geteuid() == 0:  # CI machines run as root
        command.append("--allow-root")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            assert server.poll() is None, f"jupyter lab exited: {log_path.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"jupyter lab did not answer within {SERVER_START_S} s"
            time.sleep(0.3)
        yield Lab(base, token, f"{base}/lab/tree/notebooks/{NOTEBOOK.name}?token={token}", log_path)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _png(src: str):
    from PIL import Image

    assert src.startswith("data:image/png;base64,"), f"the figure is not an inline PNG: {src[:80]}"
    return Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")


def _differ(before: str, after: str) -> bool:
    """Whether two inline PNG figures show different pixels (not merely a re-encoding)."""
    from PIL import ImageChops

    a, b = _png(before), _png(after)
    return a.size != b.size or ImageChops.difference(a, b).getbbox() is not None


def _readout(text: str) -> tuple[int, float, float]:
    """(sparsity %, weights left %, test accuracy %) from the explorer's label."""
    m = READOUT.match(text)
    assert m, f"unexpected readout {text!r}"
    return int(m.group(1)), float(m.group(2)), float(m.group(3))


def test_sparsity_slider_redraws_readout_and_figure_in_jupyterlab(chromium, lab):
    """Run All, then move the explorer's slider with the arrow keys and with a click on its track:
    each move must bring the matching readout and a redrawn figure from the kernel."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name in SHOTS:
        (ARTIFACTS / name).unlink(missing_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(REDRAW_S * 1000)
        try:
            _run_all(page, lab)
            _move_slider(page)
        except Exception:
            page.screenshot(path=ARTIFACTS / "failure.png")
            shutil.copyfile(lab.log, ARTIFACTS / "jupyterlab.log")
            raise
        finally:
            browser.close()


def _kernels(lab: Lab) -> list[dict]:
    """The server's kernels; none yet while one is starting, when jupyter_server answers 500 (a kernel
    whose last_activity is not set yet fails its own listing)."""
    try:
        return lab.api("kernels")
    except urllib.error.HTTPError as err:
        if err.code != 500:
            raise
        return []


def _run_all(page, lab: Lab) -> None:
    """Open the notebook and, once the page is connected to its idle kernel, run every cell from
    the Run menu. Run All before the connection silently runs nothing."""
    page.goto(lab.notebook_url)
    deadline = time.monotonic() + SERVER_START_S
    while not any(k["connections"] and k["execution_state"] == "idle" for k in _kernels(lab)):
        assert time.monotonic() < deadline, f"no kernel connected to the page: {_kernels(lab)}"
        time.sleep(0.3)
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()
    accept = page.locator(".jp-Dialog .jp-mod-accept")  # a kernel choice, should JupyterLab ask for one
    if accept.count():
        accept.click()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All( Cells)?$")).click()
    # The last cell's output: Run All stops at the first cell that raises.
    page.get_by_text("saved pruning.json").wait_for(state="attached", timeout=RUN_ALL_S * 1000)


def _move_slider(page) -> None:
    """Three presses of the right arrow on the slider's handle (one step each), then a click a
    quarter along its track; after each, the readout must name the slider's new value and the
    figure must show new pixels. The readout is checked before the figure, as the callback sets it first."""
    explorer = page.locator(".widget-vbox").filter(has=page.locator(".widget-slider"))
    handle = explorer.get_by_role("slider")
    readout = explorer.locator(":scope > .widget-label")
    figure = explorer.locator(".widget-output img")
    explorer.scroll_into_view_if_needed()
    expect(readout).to_have_text(re.compile(r"^sparsity 90%"))  # where the notebook's last cell leaves it
    explorer.screenshot(path=ARTIFACTS / "explorer-before.png")
    start = _readout(readout.inner_text())
    views, src = [start], figure.get_attribute("src")

    handle.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
        expect(readout).to_have_text(re.compile(rf"^sparsity {views[-1][0] + 1}%"))
        expect(figure).not_to_have_attribute("src", src)
        new = figure.get_attribute("src")
        assert _differ(src, new), "the figure was redrawn unchanged"
        views.append(_readout(readout.inner_text()))
        src = new
    explorer.screenshot(path=ARTIFACTS / "explorer-after-keys.png")
    assert [v[0] for v in views] == [90, 91, 92, 93]
    assert views[-1][1] < start[1], "fewer weights must remain at a higher sparsity"
    assert views[-1][2] != start[2], f"the test accuracy did not change: {views}"

    track = explorer.locator(".noUi-base").bounding_box()
    page.mouse.click(track["x"] + track["width"] * 0.25, track["y"] + track["height"] / 2)
    expect(handle).not_to_have_attribute("aria-valuetext", "93")
    value = int(handle.get_attribute("aria-valuetext"))
    assert 15 <= value <= 35, f"a click a quarter along the track moved the slider to {value}"
    expect(readout).to_have_text(re.compile(rf"^sparsity {value}%"))
    expect(figure).not_to_have_attribute("src", src)
    assert _differ(src, figure.get_attribute("src"))
    clicked = _readout(readout.inner_text())
    assert clicked[1] > views[-1][1] and clicked[2] != views[-1][2], (clicked, views[-1])
    explorer.screenshot(path=ARTIFACTS / "explorer-after-click.png")
    page.screenshot(path=ARTIFACTS / "jupyterlab.png")
