"""What every benchmark script shares: the machine line, the results section, peak memory, and a model sweep.

Each script writes ``benchmarks/results/<name>.md`` (command, machine, date, wall time, then its tables);
``benchmarks/make_results.py`` assembles them into ``benchmarks/RESULTS.md``. Not a test: nothing here is
imported by ``tests/``.
"""

from __future__ import annotations

import copy
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from egmf.atomic import write_text_atomic
from egmf.experiments.result import RunResult

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SHARED = REPO.parent / "shared" / "data"
# The ERC columns of the benchmark tables, in the order DESIGN.md quotes them.
ERC_COLUMNS = {"weighted_f1": "weighted F1", "macro_f1": "macro F1", "accuracy": "accuracy"}


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


def outside_repo(work: Path) -> Path:
    """``work`` if it lies outside the repository (data copies and run folders never enter the project), else exit."""
    if REPO in work.resolve().parents or work.resolve() == REPO:
        sys.exit(f"--work {work}: keep data and runs outside the repository")
    return work


def llm_budget(smoke: bool, steps: int) -> tuple[str, int]:
    """``(LLM backend, steps)`` of a sweep: the embedded SmolLM2 at ``steps``, or the tiny LLM at 2 for ``--smoke``."""
    return ("tiny", 2) if smoke else ("smollm2-135m", steps)


def llm_autocast(backend: str) -> str:
    """``model.llm.autocast`` of a sweep's LLM, resolved here so that the run folders and tables name what ran
    ('bf16' or 'none', not 'auto'): bf16 where this machine computes bf16 natively, else none (the model's own
    'auto'); the tiny test LLM always none."""
    from egmf.model.llm.precision import native_bf16

    return "bf16" if backend != "tiny" and native_bf16() else "none"


def command_line() -> str:
    return ".venv/bin/python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])


READING = "Reading (written by hand"
KEPT = "(Kept from this file's version of "


class Section:
    """Collects a script's lines and writes ``results/<name>.md`` with the provenance header.

    A hand-written reading in the file it replaces (from a paragraph starting with :data:`READING` to the end)
    is carried over below the new lines, flagged as written for the earlier version, so a rerun never
    silently drops what someone wrote about a table."""

    def __init__(self, name: str, title: str):
        self.name, self.title = name, title
        self.started = time.perf_counter()
        self.load_at_start = load_average()
        self.lines: list[str] = []
        self.kept = kept_reading(RESULTS / f"{name}.md")

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
        path = RESULTS / f"{self.name}.md"
        write_text_atomic(path, "\n".join(head + self.lines + self.kept) + "\n")
        print(f"wrote {path} ({wall:.0f} s)", flush=True)
        return path


def kept_reading(path: Path) -> list[str]:
    """The hand-written reading of an existing results file, headed by the date of the table it was written for."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = next((i for i, line in enumerate(lines) if line.startswith(KEPT)), None)
    if kept is not None:  # carried over before: its note already names the version it was written for
        return ["", *lines[kept:]]
    start = next((i for i, line in enumerate(lines) if line.startswith(READING)), None)
    if start is None:
        return []
    dated = next((line[len("- date: "):] for line in lines[:start] if line.startswith("- date: ")), "an unknown date")
    note = (f"{KEPT}{dated}: the reading below was written for that version's tables; "
            "where this run changed a figure above, the figure above holds.)")
    return ["", note, "", *lines[start:]]


@dataclass
class Trained:
    """One model of a sweep: its run (``egmf.experiments.result.RunResult``) and how this call got it."""

    result: RunResult
    reused: bool  # every seed read back from a finished run folder of an earlier call
    wall: float  # seconds this call spent on it


def train_models(base: dict, models: dict[str, list[str]], out: Path, seeds: list[int]) -> dict[str, Trained]:
    """Train each model (a name -> overrides of ``base``) with the one trainer; finished runs are reused."""
    from egmf.config import config_from_dict
    from egmf.experiments.ablation import run_or_reuse
    from egmf.typed_config import apply_overrides

    results = {}
    for name, overrides in models.items():
        data = apply_overrides(copy.deepcopy(base), [*overrides, f"output_dir={out}", f"name={name}"])
        cfg = config_from_dict(data)
        print(f"== {name}: {' '.join(overrides) or 'base'}", flush=True)
        started = time.perf_counter()
        result, reused = run_or_reuse(cfg, seeds)
        results[name] = Trained(result, reused, time.perf_counter() - started)
        print(f"   {name}: {result.summary}", flush=True)
    return results


def erc_rows(results: dict[str, Trained], dataset: str, descriptions: dict[str, str], majority: bool = False) -> list[str]:
    """A markdown table ``model | what | w-F1 | macro-F1 | Acc | steps | seeds | train s`` (fractions, 4 decimals).

    Over several seeds a cell is ``mean ± std``; ``majority`` adds the train split's majority label (scored on
    test, as ``evaluate_splits`` adds it) as a last row.
    """
    from egmf.evaluation.aggregate import format_cell, to_markdown

    rows = []
    for name, t in results.items():
        r = t.result
        m, several = r.summary[dataset], len(r.seeds) > 1
        rows.append({"model": name, "what it is": descriptions.get(name, ""),
                     **{h: format_cell(m[k], percent=False, std=several) for k, h in ERC_COLUMNS.items()},
                     "steps": str(r.steps), "seeds": str(len(r.seeds)), "train s": f"{r.train_seconds:.0f}"})
    first = next(iter(results.values())).result
    base = next(iter(first.seeds.values())).baseline(dataset) if majority else {}
    if base:
        rows.append({"model": "majority label of train", "what it is": "trivial baseline",
                     **{h: format_cell(base[k], percent=False) for k, h in ERC_COLUMNS.items()},
                     "steps": "-", "seeds": "-", "train s": "-"})
    return to_markdown(pd.DataFrame(rows), labels=2).splitlines()


def reuse_note(results: dict[str, Trained]) -> str:
    """Say which rows were read back from finished run folders, so the wall time is not read as theirs."""
    reused = [name for name, t in results.items() if t.reused]
    if not reused:
        return "every row trained (at least one of its seeds) by this call"
    return (f"{len(reused)} of {len(results)} rows read back from finished run folders of earlier calls "
            f"({', '.join(reused)}): the wall time is this call's; `train s` is each run's own training time "
            "(mean over seeds)")
