"""Every notebook as a student meets it: Run All in a real JupyterLab, driven by headless Chromium.

Each notebook gets its smoke parameters and ``interactive=True`` (injected by papermill, not executed by it), is
opened in JupyterLab and run with "Run All Cells". The test then asserts that every code cell ran, that no cell
shows an error, that every widget the notebook promises renders with its audio players, and that choosing another
item in the widget's first dropdown changes what it shows. Screenshots of the A/B player and the feature explorer
are written to ``docs/``.

Needs Debian's ``chromium`` and PyPI's ``playwright`` (the system browser is used; nothing is downloaded):
``make browser-test`` installs both and runs this file. Without them the test is skipped.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from notebook_checks import ROOT, notebook_files, smoke_parameters, tiny_checkpoints
from test_03_feature_space_analysis import TINY as TINY_03
from test_04_cross_dataset_evaluation import TINY as TINY_04

CHROMIUM = shutil.which("chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make browser-test)")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (make browser-test installs it)"),
]

RUN_TIMEOUT_S = 600  # Run All of one notebook with smoke parameters takes well under a minute on 2 cores
DOCS = ROOT / "docs"
# Notebook → (widget it promises or None, screenshot file in docs/ or None).
WIDGETS = {
    "01_data_preparation": ("pair player", None),
    "02_training": (None, None),
    "03_feature_space_analysis": ("feature explorer", "feature_explorer.png"),
    "04_cross_dataset_evaluation": ("A/B player", "ab_player.png"),
    "05_lossnet_pretraining": (None, None),
}

# JavaScript run in the page. JupyterLab exposes its application object as window.jupyterapp (expose_app_in_browser);
# the notebook panel is looked up by its path.
PANEL = "path => Array.from(window.jupyterapp?.shell.widgets('main') ?? []).find(w => w.context?.path === path)"
CELL_STATES = f"""path => {{
  const panel = ({PANEL})(path);
  const cells = panel.content.model.cells;
  const out = [];
  for (let i = 0; i < cells.length; i++) {{
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    const outputs = cell.outputs.toJSON();
    out.push({{
      count: cell.executionCount,
      errors: outputs.filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue),
    }});
  }}
  return {{cells: out, kernel: panel.sessionContext.session?.kernel?.status ?? 'none'}};
}}"""
KERNEL_IDLE = f"path => ({PANEL})(path)?.sessionContext?.session?.kernel?.status === 'idle'"
RUN_ALL = f"path => {{ window.jupyterapp.shell.activateById(({PANEL})(path).id);"
RUN_ALL += " return window.jupyterapp.commands.execute('notebook:run-all-cells'); }"
SHUTDOWN = f"path => ({PANEL})(path)?.sessionContext.shutdown()"
WIDGET_OUTPUT = ".jp-OutputArea-output:has(.jupyter-widgets select)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory: pytest.TempPathFactory):
    """A headless JupyterLab on 127.0.0.1 serving a fresh folder: (base URL, token, folder)."""
    root = tmp_path_factory.mktemp("lab")
    settings = {
        # Render every cell (JupyterLab 4 otherwise only renders the cells in view), so all outputs are in the DOM.
        "notebook-extension/tracker": {"windowingMode": "none"},
        # No news or update toasts over the widgets in the screenshots (and no request to the internet).
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }
    for name, values in settings.items():
        path = root / ".settings" / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(root / ".settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
        *(["--allow-root"] if os.geteuid() == 0 else []),  # CI containers run as root
    ]  # fmt: skip
    log = (root / ".server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"JupyterLab did not start:\n{(root / '.server.log').read_text()[-3000:]}")
            time.sleep(0.5)
    try:
        yield url, token, root
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(jupyterlab):
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _parameters(name: str, folder: Path, corpus: Path, raw_dir: Path) -> dict:
    """Smoke parameters of each notebook, completed as its headless test completes them, plus interactive=True."""
    notebook, smoke = notebook_files(name)
    params = {**smoke_parameters(smoke), "run_dir": str(folder / "run"), "interactive": True}
    if name == "01_data_preparation":
        params.update(data_root=str(corpus), raw_dir=str(raw_dir))
    elif name == "02_training":
        params.update(corpus_root=str(corpus))
    elif name in ("03_feature_space_analysis", "04_cross_dataset_evaluation"):
        tiny = TINY_03 if name.startswith("03") else TINY_04
        params.update(data_root=str(corpus), checkpoints=tiny_checkpoints(folder, tiny))
    else:
        params.update(data_root=str(corpus))
    return params


def _prepare(name: str, root: Path, corpus: Path, raw_dir: Path) -> str:
    """Write the notebook, parameters injected as papermill injects them, into the lab folder; returns its path."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    folder = root / name
    folder.mkdir()
    nb = parameterize_notebook(
        load_notebook_node(str(notebook_files(name)[0])), _parameters(name, folder, corpus, raw_dir)
    )
    nbformat.write(nb, folder / f"{name}.ipynb")
    return f"{name}/{name}.ipynb"


def _run_all(page, path: str) -> dict:
    """Run All Cells and wait until every code cell has run (or one fails); returns the final cell states."""
    page.evaluate(RUN_ALL, path)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        state = page.evaluate(CELL_STATES, path)
        failed = any(c["errors"] for c in state["cells"])
        done = all(c["count"] is not None for c in state["cells"]) and state["kernel"] == "idle"
        if failed or done:
            return state
        time.sleep(1)
    pytest.fail(f"Run All did not finish in {RUN_TIMEOUT_S} s: {page.evaluate(CELL_STATES, path)}")


def _shown(widget) -> str:
    """What a widget shows: its text plus the sources of its audio players and images."""
    media = widget.locator("audio, img").evaluate_all("els => els.map(e => e.getAttribute('src') || '')")
    return widget.inner_text() + "\n" + "\n".join(media)


@pytest.mark.parametrize("name", list(WIDGETS))
def test_notebook_runs_all_cells_in_jupyterlab(name, jupyterlab, browser, smoke_corpus, mal_raw_dir) -> None:
    url, token, root = jupyterlab
    path = _prepare(name, root, smoke_corpus, mal_raw_dir)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        # A workspace of its own, reset, so JupyterLab does not reopen the notebooks of the previous tests.
        page.goto(f"{url}/lab/workspaces/{name}/tree/{path}?reset&token={token}")
        page.wait_for_function(KERNEL_IDLE, arg=path, timeout=120_000)
        start = time.perf_counter()
        state = _run_all(page, path)
        seconds = time.perf_counter() - start
        errors = [e for c in state["cells"] for e in c["errors"]]
        assert not errors, f"{name}: cells failed: {errors}"
        assert all(c["count"] is not None for c in state["cells"])
        print(f"{name}: Run All took {seconds:.1f} s in JupyterLab")  # reported with pytest -s

        widget_name, screenshot = WIDGETS[name]
        widgets = page.locator(WIDGET_OUTPUT)
        assert page.get_by_text("Error displaying widget").count() == 0
        if widget_name is None:
            assert widgets.count() == 0
            return
        assert widgets.count() == 1, f"{name}: the {widget_name} did not render"
        widget = widgets.first
        widget.locator("audio").first.wait_for(state="attached", timeout=30_000)
        assert widget.locator("audio").count() >= 1, f"{name}: the {widget_name} has no audio player"
        if screenshot:
            DOCS.mkdir(exist_ok=True)
            tmp = DOCS / f".{screenshot}.tmp.png"
            widget.screenshot(path=str(tmp))
            os.replace(tmp, DOCS / screenshot)
        before = _shown(widget)
        select = widget.locator("select").first
        assert select.locator("option").count() >= 2, f"{name}: the first dropdown has nothing else to choose"
        select.select_option(index=1)
        page.wait_for_function(
            "([sel, before]) => { const w = document.querySelectorAll(sel)[0];"
            " const media = [...w.querySelectorAll('audio, img')].map(e => e.getAttribute('src') || '');"
            " return w.innerText + '\\n' + media.join('\\n') !== before; }",
            arg=[WIDGET_OUTPUT, before],
            timeout=60_000,
        )
        assert _shown(widget) != before
        assert widget.locator("audio").count() >= 1
    finally:
        page.evaluate(SHUTDOWN, path)
        page.close()
