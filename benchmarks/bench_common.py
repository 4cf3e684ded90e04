"""What every benchmark script shares: the machine line, the results section, peak memory, and a model sweep.

Each script writes ``benchmarks/results/<name>.md`` (command, machine, date, wall time, then its tables);
``benchmarks/make_results.py`` assembles them into ``benchmarks/RESULTS.md``. Not a test: nothing here is
imported by ``tests/``.
"""

from __future__ import annotations

import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SHARED = REPO.parent / "shared" / "data"


def machine() -> str:
    """``lscpu`` model name, cores, memory, Python and torch versions: one line."""
    model = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), model)
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gb = float("nan")
    import torch

    return (f"{model}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), {mem_gb:.0f} GB RAM, "
            f"Linux {platform.release()}, Python {platform.python_version()}, torch {torch.__version__}")


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def command_line() -> str:
    return ".venv/bin/python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])


class Section:
    """Collects a script's lines and writes ``results/<name>.md`` with the provenance header."""

    def __init__(self, name: str, title: str):
        self.name, self.title = name, title
        self.started = time.perf_counter()
        self.load_at_start = load_average()
        self.lines: list[str] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def write(self, notes: list[str] | None = None) -> Path:
        wall = time.perf_counter() - self.started
        head = [
            f"# {self.title}", "",
            f"- command: `{command_line()}` (from the repository root)",
            f"- machine: {machine()}",
            f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- wall time: {wall:.0f} s; load average at start {self.load_at_start} (other jobs share the cores)",
            *[f"- {n}" for n in notes or []], "",
        ]
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.name}.md"
        path.write_text("\n".join(head + self.lines) + "\n", encoding="utf-8")
        print(f"wrote {path} ({wall:.0f} s)", flush=True)
        return path


def train_models(base: dict, models: dict[str, list[str]], out: Path, seeds: list[int]) -> dict[str, dict]:
    """Train each model (a name -> overrides of ``base``) with the one trainer; finished runs are reused.

    Returns ``{model: {"summary": {dataset: {metric: {mean, std}}}, "train_seconds": float, "steps": int}}``.
    """
    from egmf.config import config_from_dict
    from egmf.evaluation.ablation import run_or_reuse
    from egmf.typed_config import apply_overrides

    results = {}
    for name, overrides in models.items():
        data = apply_overrides(_copy(base), [*overrides, f"output_dir={out}", f"name={name}"])
        cfg = config_from_dict(data)
        print(f"== {name}: {' '.join(overrides) or 'base'}", flush=True)
        started = time.perf_counter()
        result, reused = run_or_reuse(cfg, seeds)
        per_seed = list(result["seeds"].values())
        training = [m.get("training", {}) for m in per_seed]
        results[name] = {
            "summary": _summary(per_seed),
            "train_seconds": sum(t.get("train_seconds", 0.0) for t in training) / len(training),
            "steps": max(t.get("steps", 0) for t in training), "seeds": len(per_seed),
            "test_by_seed": {seed: m["test"] for seed, m in result["seeds"].items()},
            "wall": time.perf_counter() - started, "reused": reused, "run_dir": str(cfg.run_dir),
            # the train split's majority label scored on test, as evaluate_splits adds it
            "baseline": {d: m.get("baseline", {}) for d, m in next(iter(per_seed))["test"].items()},
        }
        print(f"   {name}: {results[name]['summary']}", flush=True)
    return results


def _summary(per_seed) -> dict:
    from egmf.evaluation.aggregate import aggregate_seeds

    by_dataset: dict[str, list] = {}
    for m in per_seed:
        for dataset, metrics in m["test"].items():
            by_dataset.setdefault(dataset, []).append(metrics)
    return {d: aggregate_seeds(ms) for d, ms in by_dataset.items()}


def _copy(d):
    import copy

    return copy.deepcopy(d)


def erc_rows(results: dict[str, dict], dataset: str, descriptions: dict[str, str], majority: bool = False) -> list[str]:
    """Markdown rows ``| model | what | w-F1 | macro-F1 | Acc | steps | seeds | train s |`` (fractions, 4 decimals).

    Over several seeds a cell is ``mean ± std``; ``majority`` adds the train split's majority label as a last row.
    """
    rows = ["| model | what it is | weighted F1 | macro F1 | accuracy | steps | seeds | train s |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        m = r["summary"][dataset]

        def cell(key):
            stat = m[key]
            return f"{stat['mean']:.4f}" + (f" ± {stat['std']:.4f}" if r["seeds"] > 1 else "")

        rows.append(f"| {name} | {descriptions.get(name, '')} | {cell('weighted_f1')} | {cell('macro_f1')} | "
                    f"{cell('accuracy')} | {r['steps']} | {r['seeds']} | {r['train_seconds']:.0f} |")
    base = next(iter(results.values()))["baseline"].get(dataset, {}) if majority else {}
    if base:
        rows.append(f"| majority label of train | trivial baseline | {base['weighted_f1']:.4f} | "
                    f"{base['macro_f1']:.4f} | {base['accuracy']:.4f} | - | - | - |")
    return rows


def reuse_note(results: dict[str, dict]) -> str:
    """Say which rows were read back from finished run folders, so the wall time is not read as theirs."""
    reused = [name for name, r in results.items() if r["reused"]]
    if not reused:
        return "every row trained (at least one of its seeds) by this call"
    return (f"{len(reused)} of {len(results)} rows read back from finished run folders of earlier calls "
            f"({', '.join(reused)}): the wall time is this call's; `train s` is each run's own training time "
            "(mean over seeds)")
