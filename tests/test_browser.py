"""What JupyterLab and Notebook 7 show: a real server, Debian's chromium, driven by playwright.

The README's "The result: `RunResult`" and "Tab completion", as a person sees them: a notebook
is opened and run in the browser, and the rendered page is read — the result's rows and
summaries, a failed run's header, both themes, the completer's popup.

Needs jupyterlab, notebook and playwright (`pip install .[browser]`) and /usr/bin/chromium
(`apt-get install chromium`); playwright never downloads a browser of its own. Without them
these tests are skipped, except under IPY_RUNMOD_BROWSER=required (the nox `browser` session),
where they fail. Screenshots of a failing test are saved, and of every test when
IPY_RUNMOD_SCREENSHOTS names a directory.
"""

from __future__ import annotations

import json
import math
import os
import queue
import secrets
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
REQUIRED = os.environ.get("IPY_RUNMOD_BROWSER") == "required"
TIMEOUT_MS = 60_000  # a kernel's first start on a loaded 2-core machine


def _missing() -> str | None:
    for module in ("playwright.sync_api", "jupyterlab", "notebook", "pandas"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install .[browser])"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


if (_why := _missing()) is not None:
    if REQUIRED:
        pytest.fail(f"the browser tests cannot run: {_why}", pytrace=False)
    pytest.skip(_why, allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

expect.set_options(timeout=TIMEOUT_MS)

FRAMES = '''
"""Binds what a notebook user's module binds: a frame, an array, a dict, many names."""
from math import *
import numpy as np
import pandas as pd

frame = pd.DataFrame({"x": range(5), "y": [i * i for i in range(5)]})
grid = np.zeros((3, 4), dtype=np.int32)
stats = {"n": 4, "mean": 2.5, "min": 1, "max": 4, "stdev": 1.29}
''' + "".join(f"v{i} = {i}\n" for i in range(30))

CONSTANTS = ("pi", "e", "tau", "inf", "nan")  # math's names that are not functions

BROKEN = """
values = [1.0, 2.0]
total = sum(values)
raise ValueError("size must be positive")
"""


def _cell(source: str) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "metadata": {},
        "source": source,
        "outputs": [],
        "execution_count": None,
    }


NOTEBOOK = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    },
    "cells": [
        _cell("%load_ext ipy_runmod"),
        _cell("%runmod -o rmdemo.frames"),
        _cell("%runmod -o rmdemo.frames -n report"),
        # the Python API: a failed run's RunResult without failing the cell
        _cell("import ipy_runmod\nipy_runmod.run('rmdemo.broken')"),
        _cell(""),  # where completion is typed
    ],
}

SETTINGS = {
    # no news question over the page
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
    # The popup shows the kernel's completions alone: JupyterLab's "context" provider adds
    # the words of the cell itself, which are JupyterLab's, not the kernel's.
    "@jupyterlab/completer-extension/manager.jupyterlab-settings": {
        "availableProviders": {"CompletionProvider:context": -1, "CompletionProvider:kernel": 550}
    },
}
#: One copy of the notebook for each test, each with a kernel of its own.
NOTEBOOKS = ("lab.ipynb", "completion.ipynb", "notebook7.ipynb")


@dataclass
class Server:
    url: str  #: http://127.0.0.1:PORT
    token: str
    root: Path
    log: list[str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A JupyterLab server on 127.0.0.1 with a token, in a temporary directory of its own."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    (root / "rmdemo").mkdir(parents=True)
    (root / "rmdemo" / "__init__.py").write_text("")
    (root / "rmdemo" / "frames.py").write_text(textwrap.dedent(FRAMES))
    (root / "rmdemo" / "broken.py").write_text(BROKEN)
    for name in NOTEBOOKS:
        (root / name).write_text(json.dumps(NOTEBOOK))
    settings = base / "settings"
    for name, value in SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(value))
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "IPYTHONDIR": str(base / "ipython"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
    }
    port, token = _free_port(), secrets.token_hex(16)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--allow-root",  # CI runs as root
        "--LabApp.extension_manager=readonly",  # never asks the network for extensions
        # window.jupyterapp, in JupyterLab and Notebook 7: commands are run by name
        "--LabApp.expose_app_in_browser=True",
        "--JupyterNotebookApp.expose_app_in_browser=True",
    ]
    process = subprocess.Popen(
        command, cwd=root, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    log: list[str] = []
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    try:
        # Ready when it says where it listens (its log line), or failed when it exits.
        while (line := lines.get(timeout=TIMEOUT_MS / 1000)) is not None:
            if f"{url}/" in line:
                break
        else:
            pytest.fail("JupyterLab did not start:\n" + "".join(log), pytrace=False)
        yield Server(url, token, root, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser_context() -> Iterator[Any]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield browser.new_context(viewport={"width": 1280, "height": 1000})
        finally:
            browser.close()


SCREENSHOTS = os.environ.get("IPY_RUNMOD_SCREENSHOTS")


@contextmanager
def screenshots(page: Page, name: str, tmp_path: Path) -> Iterator[None]:
    """A screenshot of the page when the block fails, into IPY_RUNMOD_SCREENSHOTS (or the
    test's temporary directory); with IPY_RUNMOD_SCREENSHOTS, of every block."""
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        path = folder / f"{name}-failed.png"
        page.screenshot(path=path)
        print(f"screenshot of the failure: {path}")
        raise
    if SCREENSHOTS:
        page.screenshot(path=folder / f"{name}.png")


def open_and_run(page: Page, server: Server, path: str) -> None:
    """Open the notebook at `path` (JupyterLab's or Notebook 7's URL), run all its cells."""
    page.goto(f"{server.url}{path}?token={server.token}&reset")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget")
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    # The kernel is ready once the notebook's session says so; then run everything.
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.sessionContext?.session?.kernel?.status"
        " === 'idle'",
        timeout=TIMEOUT_MS,
    )
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    expect(page.locator(".ipy-runmod")).to_have_count(3)


def rows(table: Any) -> list[list[str]]:
    return table.locator("tbody tr").evaluate_all(
        "trs => trs.map(tr => [...tr.cells].map(td => td.innerText))"
    )


def set_theme(page: Page, theme: str) -> None:
    page.evaluate(
        f"() => window.jupyterapp.commands.execute('apputils:change-theme', {{theme: '{theme}'}})"
    )
    page.wait_for_selector(f"body[data-jp-theme-name='{theme}']", state="attached")


def luminance(css_color: str) -> float:
    """Relative luminance (0 black .. 1 white) of an `rgb(...)` / `rgba(...)` color."""
    numbers = css_color[css_color.index("(") + 1 : -1].split(",")
    r, g, b = (float(n) / 255 for n in numbers[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_result_display_in_jupyterlab(server: Server, browser_context: Any, tmp_path: Path) -> None:
    page = browser_context.new_page()
    with screenshots(page, "jupyterlab-light", tmp_path):
        open_and_run(page, server, "/lab/tree/lab.ipynb")
        frames, renamed, failed = (page.locator(".ipy-runmod").nth(i) for i in range(3))
        # the header: module, no "m as m", ok
        expect(frames.locator(".rm-header")).to_contain_text("RunResult rmdemo.frames ok")
        assert " as " not in frames.locator(".rm-header").inner_text()
        expect(renamed.locator(".rm-header")).to_contain_text("rmdemo.frames as report")
        table = frames.locator("table.rm-names").first
        shown = rows(table)
        by_name = {row[0]: row[1:] for row in shown if len(row) == 3}
        assert by_name["frame"] == ["DataFrame", "shape (5, 2), columns x: int64, y: int64"]
        assert by_name["grid"] == ["ndarray", "shape (3, 4), int32"]
        assert by_name["stats"] == [
            "dict",
            "5 items: {'n': 4, 'mean': 2.5, 'min': 1, 'max': 4, 'stdev': 1.29}",
        ]
        # math's constants, frame, grid, stats, v0..v29: the first 20, then a count
        assert len(shown) == 21 and shown[-1] == ["… and 18 more"]
        # imported names (math's functions, np, pd) are apart, collapsed
        imported = frames.locator("details.rm-imported")
        functions = [
            name for name in dir(math) if not name.startswith("_") and name not in CONSTANTS
        ]
        expect(imported.locator("summary")).to_have_text(f"imported: {len(functions) + 2} names")
        expect(imported.locator("table")).to_be_hidden()
        # names left-aligned, values monospace, the text fallback hidden
        name_cell = table.locator("td.rm-name").first
        assert name_cell.evaluate("td => getComputedStyle(td).textAlign") == "left"
        font = table.locator("td.rm-value").first.evaluate("td => getComputedStyle(td).fontFamily")
        assert "mono" in font.lower(), font
        expect(frames.locator(".rm-text")).to_be_hidden()
        # a failed run says what failed
        expect(failed.locator(".rm-status")).to_have_text("failed: ValueError")
        expect(failed.locator(".rm-error")).to_have_text("ValueError: size must be positive")
        assert rows(failed.locator("table.rm-names")) == [
            ["values", "list", "2 items: [1.0, 2.0]"],
            ["total", "float", "3.0"],
        ]
        light = luminance(
            table.locator("td.rm-value").first.evaluate("td => getComputedStyle(td).color")
        )
        assert light < 0.3  # dark text on the light theme
    with screenshots(page, "jupyterlab-dark", tmp_path):
        set_theme(page, "JupyterLab Dark")
        value = page.locator(".ipy-runmod table.rm-names td.rm-value").first
        expect(value).to_be_visible()
        dark = luminance(value.evaluate("td => getComputedStyle(td).color"))
        assert dark > 0.6  # light text on the dark theme
        failed_color = page.locator(".ipy-runmod .rm-failed").first.evaluate(
            "e => getComputedStyle(e).color"
        )
        assert luminance(failed_color) > 0.25  # the error color stays readable on dark
    set_theme(page, "JupyterLab Light")  # a setting of the server's: the other tests' too
    page.close()


def test_completion_popup_in_jupyterlab(
    server: Server, browser_context: Any, tmp_path: Path
) -> None:
    page = browser_context.new_page()
    with screenshots(page, "jupyterlab-completion", tmp_path):
        open_and_run(page, server, "/lab/tree/completion.ipynb")
        editor = page.locator(".jp-Notebook .jp-Cell").last.locator(".cm-content")
        popup = page.locator(".jp-Completer")

        def offered(line: str) -> list[list[str]]:
            editor.click()
            page.keyboard.press("ControlOrMeta+a")
            page.keyboard.type(line)
            page.keyboard.press("Tab")
            expect(popup).to_be_visible()
            if SCREENSHOTS:
                page.screenshot(path=Path(SCREENSHOTS) / f"completion {line.strip()}.png")
            items = popup.locator(".jp-Completer-item").evaluate_all(
                "items => items.map(i => [i.querySelector('.jp-Completer-match').innerText,"
                " i.querySelector('.jp-Completer-typeExtended').innerText])"
            )
            items = [[text, _readable(kind)] for text, kind in items]
            page.keyboard.press("Escape")
            expect(popup).to_be_hidden()
            return items

        options = offered("%runmod -")
        texts = [text for text, _ in options]  # in JupyterLab's own order
        assert {"-n", "-o", "-t"} <= set(texts)
        assert {"--merge", "--which", "--only"} <= set(texts)
        assert not any(text.startswith("--no-") for text in texts)
        described = dict(options)
        assert described["--which"] == "print what would run, and run nothing"
        assert described["-o"] == described["--result"] == "return the runresult"
        no = [text for text, _ in offered("%runmod --no")]
        assert "--no-merge" in no and all(text.startswith("--no-") for text in no)
        # After an option that takes a value: no Python keywords, magics or paths, only one
        # empty entry (IPython lets a completer silence the others only with a completion)
        # that inserts nothing and says what value goes there.
        assert offered("%runmod -n ") == [["", "name: __name__ in the module"]]
        assert offered("%runmod m --only res") == [["", "patterns: merge only these names"]]
        assert editor.inner_text() == "%runmod m --only res"
    page.close()


def _readable(description: str) -> str:
    """A completion's description with its no-break spaces and hyphens as plain ones."""
    return description.replace("\N{NO-BREAK SPACE}", " ").replace("\N{NON-BREAKING HYPHEN}", "-")


def test_result_display_in_notebook_7(server: Server, browser_context: Any, tmp_path: Path) -> None:
    page = browser_context.new_page()
    with screenshots(page, "notebook7", tmp_path):
        open_and_run(page, server, "/notebooks/notebook7.ipynb")
        frames = page.locator(".ipy-runmod").first
        expect(frames.locator(".rm-header")).to_contain_text("RunResult rmdemo.frames ok")
        by_name = {row[0]: row[1:] for row in rows(frames.locator("table.rm-names").first)}
        assert by_name["frame"] == ["DataFrame", "shape (5, 2), columns x: int64, y: int64"]
        expect(page.locator(".ipy-runmod .rm-error")).to_have_text(
            "ValueError: size must be positive"
        )
    with screenshots(page, "notebook7-dark", tmp_path):
        set_theme(page, "JupyterLab Dark")
        value = page.locator(".ipy-runmod table.rm-names td.rm-value").first
        assert luminance(value.evaluate("td => getComputedStyle(td).color")) > 0.6
    set_theme(page, "JupyterLab Light")
    page.close()
