"""Rerun solution notebooks as "other machines" would and tabulate every asserted headline: `make sweep`.

    python tools/sweep.py                                   # all solution notebooks, the five default runs
    python tools/sweep.py solutions/02_encoders.ipynb       # one notebook
    python tools/sweep.py --runs 0:2:best,1:1:avx2          # your own runs: seed shift : threads : kernel level

Another processor is another arithmetic: vector width and summation order change the last bits of every
sum, and a short training amplifies them into other weights. A run here changes exactly those things:

* the seed shift ``COURSE_SEED`` (every training seed of the notebook moves; the world's data does not),
* the number of threads (``OMP_NUM_THREADS``/``MKL_NUM_THREADS``: another split of every reduction),
* the CPU kernel level: ATen's vectorised kernels (``ATEN_CPU_CAPABILITY``) and oneDNN's convolutions
  (``ONEDNN_MAX_CPU_ISA``) capped at AVX2 or at no vector extension at all ("default"); "best" leaves both
  to the machine. (MKL's matrix products ignore ``MKL_ENABLE_INSTRUCTIONS`` on the machines tried, so it is
  not set; ``--verify`` shows which settings change the bits of a matmul and a convolution on yours.)

Each run executes the notebook headless (``jupyter nbconvert --execute``) with the environment of
``make test`` (offline, strict checks, CI) plus ``COURSE_EXPECT_LOG``, so every ``expect(...)`` result is
recorded and none stops the run. Results: ``build/sweep/results.json`` (every run) and
``build/sweep/summary.md`` (per result: threshold, min / median / max, the worst margin); the summary is
printed too. Exit status 1 when a result missed its threshold in any run or a run failed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "sweep"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from utils.env import KERNEL_LEVELS  # noqa: E402

# (seed shift, threads, kernel level): together they span 4 seeds, 1 and 2 threads and three kernel levels.
DEFAULT_RUNS = "0:2:best,0:1:avx2,1:2:default,2:1:best,3:2:avx2"
LEVELS = KERNEL_LEVELS  # kernel level -> environment that caps ATen and oneDNN at it
TEST_ENV = {"CI": "true", "COURSE_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1", "PYTHONHASHSEED": "0", "COURSE_STRICT_CHECKS": "1"}
SWEPT = ("COURSE_SEED", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
         "COURSE_FAST", "COURSE_EXPECT_LOG")


@dataclass(frozen=True)
class RunSpec:
    """One perturbation: seed shift, thread count, kernel level."""

    seed: int
    threads: int
    level: str

    @property
    def label(self) -> str:
        return f"seed{self.seed}-t{self.threads}-{self.level}"

    def environment(self) -> dict[str, str]:
        """The variables this run sets on top of ``make test``'s."""
        env = {"COURSE_SEED": str(self.seed), "OMP_NUM_THREADS": str(self.threads),
               "MKL_NUM_THREADS": str(self.threads)}
        env.update(LEVELS[self.level])
        return env


def parse_runs(text: str) -> list[RunSpec]:
    """``"0:2:best,1:1:avx2"`` -> run specs; the level must be one of :data:`LEVELS`."""
    runs = []
    for item in text.split(","):
        seed, threads, level = item.strip().split(":")
        if level not in LEVELS:
            raise SystemExit(f"unknown kernel level {level!r}; choose from {', '.join(LEVELS)}")
        runs.append(RunSpec(int(seed), int(threads), level))
    return runs


def run_environment(spec: RunSpec, log: Path | None = None) -> dict[str, str]:
    """The full environment of one run: the machine's, minus any sweep variable, plus make test's and the run's."""
    env = {k: v for k, v in os.environ.items() if k not in SWEPT}
    env.update(TEST_ENV)
    env.update(spec.environment())
    if log is not None:
        env["COURSE_EXPECT_LOG"] = str(log)
    return env


def probe_kernels(spec: RunSpec) -> dict[str, str]:
    """What torch reports under this run's environment: CPU capability, threads, and a hash of a matmul and
    a convolution (two runs whose hashes differ do different arithmetic)."""
    code = ("import hashlib, torch; torch.manual_seed(0); a = torch.randn(257, 513); b = torch.randn(513, 129);"
            "c = torch.nn.Conv2d(3, 16, 3)(torch.randn(4, 3, 32, 32)).detach();"
            "h = lambda t: hashlib.md5(t.numpy().tobytes()).hexdigest()[:8];"
            "print(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads(), h(a @ b), h(c))")
    out = subprocess.run([sys.executable, "-c", code], env=run_environment(spec), capture_output=True, text=True,
                         check=True).stdout.split()
    return {"capability": out[0], "threads": out[1], "matmul": out[2], "conv": out[3]}


@dataclass
class RunResult:
    """One notebook under one run spec."""

    notebook: str
    run: str
    spec: dict
    kernels: dict
    seconds: float
    ok: bool
    error: str = ""
    results: list[dict] = field(default_factory=list)


def execute(notebook: Path, spec: RunSpec, timeout: int) -> RunResult:
    """Execute one notebook headless under ``spec``; collect its ``expect`` log."""
    work = OUT / "runs"
    work.mkdir(parents=True, exist_ok=True)
    log = work / f"{notebook.stem}__{spec.label}.jsonl"
    log.unlink(missing_ok=True)
    cmd = [str(BIN / "jupyter"), "nbconvert", "--to", "notebook", "--execute", str(notebook),
           "--output-dir", str(work), "--output", f"{notebook.stem}__{spec.label}",
           f"--ExecutePreprocessor.timeout={timeout}", "--ExecutePreprocessor.kernel_name=python3"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=run_environment(spec, log), capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    error = "" if proc.returncode == 0 else "\n".join(proc.stderr.strip().splitlines()[-15:])
    return RunResult(str(notebook.relative_to(ROOT)), spec.label, asdict(spec), probe_kernels(spec), seconds,
                     proc.returncode == 0, error, rows)


def keyed(rows: list[dict]) -> list[tuple[str, dict]]:
    """Name each result uniquely within a run (a name that repeats gets #2, #3 ...)."""
    seen: dict[str, int] = {}
    out = []
    for row in rows:
        seen[row["name"]] = seen.get(row["name"], 0) + 1
        out.append((row["name"] if seen[row["name"]] == 1 else f"{row['name']} #{seen[row['name']]}", row))
    return out


def margin(row: dict) -> float:
    """Distance from the threshold, positive when the result holds (the smaller side for a two-sided bound)."""
    sides = []
    if row["at_least"] is not None:
        sides.append(row["value"] - row["at_least"])
    if row["at_most"] is not None:
        sides.append(row["at_most"] - row["value"])
    return min(sides) if sides else 0.0


def summarise(results: list[RunResult]) -> tuple[str, bool]:
    """A markdown summary (one table per notebook) and whether everything held."""
    lines, all_ok = [], True
    for nb in dict.fromkeys(r.notebook for r in results):
        runs = [r for r in results if r.notebook == nb]
        lines += [f"### {nb}", "", "runs: " + ", ".join(
            f"{r.run} ({r.kernels['capability']}, {r.kernels['threads']} thr, {r.seconds:.0f} s"
            f"{'' if r.ok else ', FAILED'})" for r in runs), ""]
        lines += ["| result | threshold | min | median | max | worst margin | runs | holds |",
                  "|---|---|---|---|---|---|---|---|"]
        table: dict[str, list[dict]] = {}
        for r in runs:
            for key, row in keyed(r.results):
                table.setdefault(key, []).append(row)
        current = {key for key, _ in keyed(runs[-1].results)}  # the newest run: what the notebook asserts today
        dropped = [key for key in table if key not in current]
        for key, rows in table.items():
            if key in dropped:
                continue
            values = [row["value"] for row in rows]
            latest = rows[-1]  # the newest run carries the notebook's current threshold: judge every run by it
            rows = [{**row, "at_least": latest["at_least"], "at_most": latest["at_most"]} for row in rows]
            bound = " and ".join(b for b in (f"≥ {latest['at_least']}" if latest["at_least"] is not None else "",
                                             f"≤ {latest['at_most']}" if latest["at_most"] is not None else "") if b)
            holds = all(margin(row) >= 0 for row in rows) and len(rows) == len(runs)
            all_ok &= holds
            lines.append(f"| {key} | {bound} | {min(values):.4g} | {statistics.median(values):.4g} | "
                         f"{max(values):.4g} | {min(margin(row) for row in rows):+.4g} | {len(rows)}/{len(runs)} | "
                         f"{'yes' if holds else '**NO**'} |")
        if dropped:
            lines += ["", "no longer asserted (earlier runs only): " + "; ".join(dropped)]
        for r in runs:
            if not r.ok:
                all_ok = False
                lines += ["", f"run {r.run} failed:", "```", r.error, "```"]
        lines.append("")
    return "\n".join(lines), all_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="solution notebooks (default: all)")
    parser.add_argument("--runs", default=os.environ.get("RUNS") or DEFAULT_RUNS,
                        help=f"seed:threads:level,... (default {DEFAULT_RUNS})")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("--verify", action="store_true", help="only show what each run's settings do to torch")
    parser.add_argument("--inplace", action="store_true",
                        help="write each executed notebook back over its source (use with one run: its outputs are "
                             "what gets committed)")
    parser.add_argument("--report", action="store_true",
                        help="only rebuild the summary from the runs already in build/sweep/results.json")
    args = parser.parse_args(argv)
    specs = parse_runs(args.runs)
    if args.verify:
        for spec in specs:
            print(spec.label, probe_kernels(spec))
        return 0
    if args.report:
        saved = [RunResult(**r) for r in json.loads((OUT / "results.json").read_text())] if (
            OUT / "results.json").exists() else []
        known = {(r.notebook, r.run) for r in saved}
        for log in sorted((OUT / "runs").glob("*.jsonl")):  # runs of a sweep still under way
            stem, label = log.stem.split("__")
            if (f"solutions/{stem}.ipynb", label) not in known:
                saved.append(RunResult(f"solutions/{stem}.ipynb", label, {}, {"capability": "?", "threads": "?"}, 0.0,
                                       True, "", [json.loads(line) for line in log.read_text().splitlines()]))
        summary, ok = summarise(sorted(saved, key=lambda r: r.notebook))
        (OUT / "summary.md").write_text(f"# Sweep (rebuilt from results.json): "
                                        f"{'every result held' if ok else 'SOME RESULTS MISSED'}\n\n" + summary)
        print(summary)
        return 0 if ok else 1
    notebooks = [p.resolve() for p in args.notebooks] or sorted((ROOT / "solutions").glob("*.ipynb"))
    OUT.mkdir(parents=True, exist_ok=True)
    results: list[RunResult] = []
    start = time.perf_counter()
    for nb in notebooks:
        for spec in specs:
            print(f"== {nb.name} {spec.label} ...", flush=True)
            result = execute(nb, spec, args.timeout)
            results.append(result)
            if args.inplace and result.ok:
                shutil.copyfile(OUT / "runs" / f"{nb.stem}__{spec.label}.ipynb", nb)
            misses = [k for k, row in keyed(result.results) if not row["ok"]]
            print(f"   {result.seconds:.0f} s, {len(result.results)} results, "
                  f"{'ok' if result.ok else 'FAILED'}{'; missed: ' + ', '.join(misses) if misses else ''}", flush=True)
    summary, ok = summarise(results)
    total = time.perf_counter() - start
    header = (f"# Sweep: {len(notebooks)} notebook(s) × {len(specs)} runs ({args.runs}), {total:.0f} s wall, "
              f"{'every result held' if ok else 'SOME RESULTS MISSED'}\n\n")
    (OUT / "summary.md").write_text(header + summary)
    previous = json.loads((OUT / "results.json").read_text()) if (OUT / "results.json").exists() else []
    fresh = {(r.notebook, r.run) for r in results}
    merged = [p for p in previous if (p["notebook"], p["run"]) not in fresh] + [asdict(r) for r in results]
    (OUT / "results.json").write_text(json.dumps(merged, indent=1))
    print(header + summary)
    print(f"written: {OUT / 'summary.md'}, {OUT / 'results.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
