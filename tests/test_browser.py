"""Real-browser test of the learner's lab: `make test-browser` (not part of `make test`).

Starts JupyterLab exactly as `make lab` does (loopback, a token), opens Phase 0 from the file browser in headless
Chromium, runs every cell through the UI (Run → Run All Cells) and asserts what a learner sees:

* the course kernel ("Python 3 (course)") is selected without a kernel dialog, and no news toast appears;
* every code cell executed, no cell shows an error, every figure is an image of non-zero size;
* while a training cell runs (its progress bar showing) the kernel status is Busy: in the status bar, in the
  notebook toolbar's indicator and in /api/kernels — a false "Idle" makes learners restart a working kernel;
* the server log holds no configuration warning.

Screenshots go to build/browser/. The test stops everything it started (server, kernel, browser, driver).
Needs selenium (the target installs it) and the OS packages chromium and chromium-driver (Debian names).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "build" / "browser"
NOTEBOOK = "00_prerequisites.ipynb"
KERNEL_NAME = "Python 3 (course)"
TOKEN = "browser-test"
RUN_ALL_TIMEOUT = float(os.environ.get("COURSE_BROWSER_TIMEOUT", "1200"))  # seconds; Run All takes ~2-5 min
REQUESTED = os.environ.get("COURSE_BROWSER_TEST") == "1"  # set by `make test-browser`
# Server log lines that are not configuration warnings: a freshly cloned notebook has no signature yet.
ALLOWED_WARNINGS = ("is not trusted",)

pytestmark = pytest.mark.skipif(not REQUESTED, reason="real-browser test: run it with `make test-browser`")


def _chromium() -> tuple[str | None, str | None]:
    browser = os.environ.get("CHROME_BIN") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    return browser, os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")


def _missing() -> list[str]:
    browser, driver = _chromium()
    missing = [] if browser else ["chromium (apt-get install chromium)"]
    missing += [] if driver else ["chromedriver (apt-get install chromium-driver)"]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (make test-browser installs it from tools/lab/browser-requirements.txt)")
    return missing


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


# One snapshot of what the learner sees, read in a single script so its parts are consistent with each other.
SNAPSHOT_JS = r"""
const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
const bar = Array.from(document.querySelectorAll('.jp-StatusBar-Item'))
    .map(e => e.textContent.trim()).find(t => t.includes(arguments[0])) || null;
const indicator = panel && panel.querySelector('.jp-Notebook-ExecutionIndicator');
const cells = panel ? Array.from(panel.querySelectorAll('.jp-CodeCell')) : [];
const prompts = cells.map(c => (c.querySelector('.jp-InputArea-prompt') || {}).textContent || '');
const running = prompts.map((p, i) => [p, i]).filter(x => x[0].includes('*')).map(x => x[1]);
const first = running.length ? cells[running[0]] : null;
return {
  bar: bar,
  indicator: indicator ? indicator.getAttribute('data-status') : null,
  prompts: prompts,
  running: running,
  progress: !!(first && first.querySelector('.jp-OutputArea .widget-progress, .jp-OutputArea .jupyter-widgets')),
  dialogs: Array.from(document.querySelectorAll('.jp-Dialog')).map(d => d.textContent.slice(0, 200)),
  toasts: Array.from(document.querySelectorAll('.Toastify__toast')).map(t => t.textContent.slice(0, 200)),
};
"""

OUTPUTS_JS = r"""
const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
const cells = Array.from(panel.querySelectorAll('.jp-CodeCell'));
return cells.map((c, i) => ({
  index: i,
  prompt: (c.querySelector('.jp-InputArea-prompt') || {}).textContent || '',
  text: Array.from(c.querySelectorAll('.jp-OutputArea-output')).map(o => o.textContent).join('\n').slice(0, 4000),
  images: Array.from(c.querySelectorAll('.jp-OutputArea-output img')).length,
}));
"""

SCROLL_JS = r"""
const cell = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')[arguments[0]];
(cell.querySelector('.jp-OutputArea .widget-progress, .jp-OutputArea .jupyter-widgets') || cell)
    .scrollIntoView({block: 'center'});
"""

IMAGE_JS = r"""
const img = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output img')[arguments[0]];
img.scrollIntoView({block: 'center'});
const r = img.getBoundingClientRect();
return {complete: img.complete, natural: [img.naturalWidth, img.naturalHeight], shown: [r.width, r.height]};
"""


class Lab:
    """`make lab` on a free loopback port with a token, isolated from the tester's own Jupyter settings."""

    def __init__(self, tmp: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp / "jupyter-config"
        # The tester's own settings stay out (user-level config, settings, workspaces, kernelspecs); the course's
        # settings come from the environment as for every learner. Autosave off: the repository's notebook is
        # executed in the browser but never written back.
        autosave = config / "lab" / "user-settings" / "@jupyterlab" / "docmanager-extension"
        autosave.mkdir(parents=True)
        (autosave / "plugin.jupyterlab-settings").write_text('{"autosave": false}')
        env = {k: v for k, v in os.environ.items()
               if k not in ("CI", "COURSE_STRICT_CHECKS", "COURSE_FAST", "COURSE_SEED", "PYTEST_CURRENT_TEST")}
        env.update(JUPYTER_CONFIG_DIR=str(config), JUPYTER_DATA_DIR=str(tmp / "jupyter-data"),
                   JUPYTER_RUNTIME_DIR=str(tmp / "jupyter-runtime"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   HF_DATASETS_OFFLINE="1")
        flags = (f"--no-browser --ip=127.0.0.1 --port={self.port} --port-retries=0 "
                 f"--IdentityProvider.token={TOKEN}")
        self.log_path = tmp / "lab.log"
        self._log = open(self.log_path, "w")
        # The environment running this test is the one `make lab` uses (VENV=.venv under `make test-browser`).
        self.proc = subprocess.Popen(["make", "-s", "lab", f"VENV={sys.prefix}", f"LAB_FLAGS={flags}"], cwd=ROOT,
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            assert self.proc.poll() is None, f"`make lab` exited early:\n{self.log()}"
            try:
                _get_json(self.api("status"))
                return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"JupyterLab did not answer on {self.url}:\n{self.log()}")

    def api(self, path: str) -> str:
        return f"{self.url}/api/{path}?token={TOKEN}"

    def kernel_states(self) -> list[str]:
        return [k["execution_state"] for k in _get_json(self.api("kernels"))]

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        import psutil

        try:
            started = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            started = []
        try:  # the clean way: the server shuts its kernels down, then itself
            urllib.request.urlopen(urllib.request.Request(self.api("shutdown"), method="POST"), timeout=10)
            self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(timeout=30)
        _reap(started)  # the kernel runs in its own session: make sure nothing outlives the test
        self._log.close()


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


def _stop_browser(driver) -> None:
    import psutil

    service = driver.service.process
    started = psutil.Process(service.pid).children(recursive=True) if service and service.poll() is None else []
    driver.quit()
    _reap(started)


def _reap(processes) -> None:
    """Wait up to 10 s for each process (psutil.Process) to end; kill the ones still running."""
    import psutil

    for p in processes:
        try:
            p.wait(timeout=10)
        except psutil.TimeoutExpired:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def _wait(driver, predicate, timeout: float, what: str):
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        last = driver.execute_script(SNAPSHOT_JS, KERNEL_NAME)
        if predicate(last):
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last snapshot: {last}")


def _false_idles(samples: list[dict]) -> list[dict]:
    """Samples taken while a training cell ran (its progress bar showing) that do not read Busy, leaving out the
    last sample of each cell: the cell may have finished between the kernel's idle and the prompt's update."""
    bad = []
    for i, s in enumerate(samples):
        if not (s["running"] and s["progress"]):
            continue
        nxt = samples[i + 1] if i + 1 < len(samples) else None
        if not (nxt and nxt["running"][:1] == s["running"][:1]):
            continue
        if not ((s["bar"] or "").endswith("| Busy") and s["indicator"] == "busy" and s["api"] == ["busy"]):
            bad.append(s)
    return bad


def test_phase0_run_all_in_a_real_browser(tmp_path):
    missing = _missing()
    if missing:
        pytest.fail("the real-browser test needs: " + "; ".join(missing))
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    lab = Lab(tmp_path)
    driver = None
    try:
        driver = _browser()
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        driver.get(f"{lab.url}/lab?token={TOKEN}")
        # The file browser opens on notebooks/: the lab's root lists the phase notebooks; open Phase 0 from it.
        deadline = time.time() + 120
        while time.time() < deadline:
            items = [e for e in driver.find_elements(By.CSS_SELECTOR, ".jp-DirListing-itemName")
                     if e.text.strip() == NOTEBOOK]
            if items:
                break
            time.sleep(0.5)
        else:
            driver.save_screenshot(str(SHOTS / "0-no-file-browser.png"))
            raise AssertionError(f"the file browser does not list {NOTEBOOK}")
        ActionChains(driver).double_click(items[0]).perform()

        # The course kernel starts by itself: no "Select Kernel" dialog, the status bar names it and reads Idle.
        dialogs: set[str] = set()

        notebook = _get_json(lab.api(f"contents/{NOTEBOOK}"))["content"]
        n_code = sum(c["cell_type"] == "code" for c in notebook["cells"])

        def ready(s):  # every code cell attached (JupyterLab attaches them lazily) and the kernel idle
            dialogs.update(s["dialogs"])
            return len(s["prompts"]) == n_code and (s["bar"] or "").endswith("| Idle") and s["indicator"] == "idle"

        first = _wait(driver, ready, 180, f"{NOTEBOOK} with an idle {KERNEL_NAME!r} kernel")
        driver.save_screenshot(str(SHOTS / "1-opened.png"))
        assert not dialogs, f"a dialog opened with the notebook: {sorted(dialogs)}"
        assert first["bar"].startswith(KERNEL_NAME), f"status bar shows {first['bar']!r}, not the course kernel"

        # Run → Run All Cells, through the menus as a learner does.
        driver.find_element(By.XPATH, "//div[contains(@class,'lm-MenuBar-itemLabel') and text()='Run']").click()
        driver.find_element(By.XPATH, "//div[contains(@class,'lm-Menu-itemLabel') and text()='Run All Cells']").click()
        start = time.time()
        samples, shot = [], 0
        while True:
            s = driver.execute_script(SNAPSHOT_JS, KERNEL_NAME)
            s["api"], s["t"] = lab.kernel_states(), round(time.time() - start, 1)
            samples.append(s)
            if s["running"] and s["progress"] and sum(x["running"][:1] == s["running"][:1] and x["progress"]
                                                      for x in samples) == 10:  # 5 s into each training cell
                shot += 1
                for _ in range(3):  # offscreen cells get their real height once shown: scroll until it settles
                    driver.execute_script(SCROLL_JS, s["running"][0])
                    time.sleep(0.3)
                driver.save_screenshot(str(SHOTS / f"2-training-{shot}-cell{s['running'][0]}.png"))
            # Run All marks every queued cell [*]: none left means it finished (or stopped at an error).
            if s["t"] > 2 and not s["running"] and (s["bar"] or "").endswith("| Idle"):
                break
            if s["t"] > RUN_ALL_TIMEOUT:
                driver.save_screenshot(str(SHOTS / "9-timeout.png"))
                raise AssertionError(f"Run All did not finish in {RUN_ALL_TIMEOUT:.0f} s; last snapshot {s}")
            time.sleep(0.5)
        wall = time.time() - start
        driver.save_screenshot(str(SHOTS / "3-finished.png"))
        (SHOTS / "samples.jsonl").write_text("".join(json.dumps({k: v for k, v in x.items() if k != "prompts"}) + "\n"
                                                     for x in samples))
        print(f"\nRun All of {NOTEBOOK}: {wall:.0f} s wall ({n_code} code cells, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f})")

        # The kernel status while training: Busy everywhere, for the whole cell.
        training = [x for x in samples if x["running"] and x["progress"]]
        cells = sorted({x["running"][0] for x in training})
        print(f"training cells (code-cell index): {cells}; {len(training)} samples while a progress bar showed")
        assert len(training) >= 5, "no training cell was seen running with its progress bar"
        false_idle = _false_idles(samples)
        if false_idle:
            by_cell = {}
            for x in false_idle:
                by_cell.setdefault(x["running"][0], []).append(x)
            detail = "; ".join(f"code cell {c}: {len(v)} of {sum(1 for x in training if x['running'][0] == c)} "
                               f"samples not Busy, e.g. status bar {v[0]['bar']!r}, indicator {v[0]['indicator']!r},"
                               f" /api/kernels {v[0]['api']}" for c, v in by_cell.items())
            raise AssertionError(f"the kernel status was not Busy while a training cell ran: {detail}")

        # Every code cell executed, none shows an error, every figure rendered.
        outputs = driver.execute_script(OUTPUTS_JS)
        assert len(outputs) == n_code
        unexecuted = [o["index"] for o in outputs if not o["prompt"].strip("[]: ").isdigit()]
        assert not unexecuted, f"code cells not executed: {unexecuted}"
        errors = [(o["index"], o["text"][-600:]) for o in outputs if "Traceback (most recent call last)" in o["text"]]
        assert not errors, f"error outputs: {errors}"
        n_images = sum(o["images"] for o in outputs)
        assert n_images >= 3, f"only {n_images} figures rendered"
        for i in range(n_images):
            img = driver.execute_script(IMAGE_JS, i)
            assert img["complete"] and min(img["natural"]) > 0 and min(img["shown"]) > 0, f"figure {i}: {img}"
            if i == 0:
                driver.save_screenshot(str(SHOTS / "4-first-figure.png"))

        # Course-wide lab settings: no news toast, no configuration warning in the server's log.
        toasts = driver.execute_script(SNAPSHOT_JS, KERNEL_NAME)["toasts"]
        assert not [t for t in toasts if "news" in t.lower()], f"news toast shown: {toasts}"
        warnings = [line for line in lab.log().splitlines()
                    if ("[W " in line or "WARNING" in line) and not any(a in line for a in ALLOWED_WARNINGS)]
        assert not warnings, "warnings in the server log:\n" + "\n".join(warnings)
    except BaseException:
        if driver is not None:
            try:
                driver.save_screenshot(str(SHOTS / "9-failure.png"))
            except Exception:  # noqa: BLE001 - the browser may be gone
                pass
        print(lab.log()[-4000:])
        raise
    finally:
        if driver is not None:
            _stop_browser(driver)
        lab.stop()
    with pytest.raises(OSError):  # nothing is left listening on the port
        socket.create_connection(("127.0.0.1", lab.port), timeout=2).close()
