"""The paper's ablations on one config, each a normal run, summarised in ONE table.

    egmf ablate --config configs/meld.yaml --seeds 1111 1112 1113
    egmf ablate --config configs/meld.yaml --only full no_local k1 llm_text

Every variant is the base config plus a few ``--set`` style overrides (:data:`VARIANTS`: adding an ablation
is one line). Each trains with :func:`egmf.experiments.run.run` into ``<output>/<name>/ablation_<variant>/``, a
run folder like any other (config, checkpoints, metrics per seed), and the table ``ablation.md`` +
``ablation.csv`` lands beside them: per variant and dataset, the task's metrics as mean ± std over seeds
(population std, as MMSA), and the mean training time.

Resumable: a variant whose run folder already holds the metrics of every requested seed is read back,
not trained again; an interrupted one continues from its last checkpoint (``run(..., resume=True)``, which
refuses a folder whose saved config differs). A variant whose resolved config equals an earlier one's
(``k4`` when the base config already has K=4) reuses that variant's result instead of training twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from egmf.atomic import write_text_atomic
from egmf.config import RunConfig, config_from_dict
from egmf.errors import ConfigError, RunFolderExistsError
from egmf.evaluation.aggregate import metric_cells, metric_numbers, to_markdown, write_csv
from egmf.evaluation.metrics import FAMILY_KEYS
from egmf.experiments.result import RunResult
from egmf.typed_config import apply_overrides, to_dict

# name -> overrides applied to the base config. "off" for a gating level means its uniform mean.
VARIANTS: dict[str, list[str]] = {
    "full": [],
    "no_local": ["model.fusion.use_local=false"],
    "no_semantic": ["model.fusion.use_semantic=false"],
    "no_global": ["model.fusion.use_global=false"],
    "no_modality_gate": ["model.fusion.modality_gating=false"],
    "no_expert_gate": ["model.fusion.expert_gating=false"],
    "no_fusion_head": ["model.fusion_head_weight=0"],
    "k1": ["model.fusion.num_pseudo_tokens=1"],
    "k4": ["model.fusion.num_pseudo_tokens=4"],
    "k8": ["model.fusion.num_pseudo_tokens=8"],
    "k16": ["model.fusion.num_pseudo_tokens=16"],
    "lora_r4": ["model.lora.r=4"],
    "lora_r8": ["model.lora.r=8"],
    "lora_r16": ["model.lora.r=16"],
    "llm_text": ["model.name=llm_text"],
    "egmf_mean_gate": ["model.name=egmf_mean_gate"],
    "late_fusion": ["model.name=late_fusion"],
    "mult": ["model.name=mult"],
}

# run(cfg, seeds, resume=...) -> RunResult: egmf.experiments.run.run, or a stand-in in tests.
Runner = Callable[..., RunResult]


@dataclass
class VariantResult:
    """One row group of the table: a variant and its run (metrics per seed and dataset)."""

    name: str
    overrides: list[str]
    run: RunResult
    reused: bool = False  # read back from a finished run folder
    same_as: str | None = None  # its resolved config equals this earlier variant's


def variant_names(only: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The variants to run, in table order; an unknown name is a :class:`ConfigError` listing the valid ones."""
    unknown = [n for n in only if n not in VARIANTS]
    if unknown:
        raise ConfigError(f"--only: unknown variant {unknown[0]!r}; valid choices: {', '.join(VARIANTS)}")
    return [n for n in VARIANTS if not only or n in only]


def variant_config(base: RunConfig, name: str, out_root: Path) -> RunConfig:
    """``base`` with variant ``name``'s overrides, its run folder at ``out_root/ablation_<name>``, validated."""
    data = to_dict(base)
    apply_overrides(data, [*VARIANTS[name], f"output_dir={out_root}", f"name=ablation_{name}"])
    try:
        return config_from_dict(data)
    except ConfigError as e:
        raise ConfigError(f"ablation variant {name!r} ({', '.join(VARIANTS[name]) or 'no overrides'}): {e}") from None


def _identity(cfg: RunConfig) -> dict:
    """What makes two variants the same experiment: the config without its name and folder."""
    d = to_dict(cfg)
    d.pop("name"), d.pop("output_dir")
    return d


def is_finished(run_dir: Path, seeds: list[int]) -> bool:
    return all((run_dir / f"seed_{s}" / "metrics.json").is_file() for s in seeds)


def run_or_reuse(cfg: RunConfig, seeds: list[int], runner: Runner | None = None) -> tuple[RunResult, bool]:
    """Train ``cfg`` for ``seeds`` unless its run folder already holds them: ``(run() result, reused)``.

    An existing folder is continued with ``resume=True``: finished seeds are read back, an interrupted seed
    resumes from its last checkpoint, and a folder saved with another config is refused by ``run``.
    """
    if runner is None:
        from egmf.experiments.run import run as runner  # torch and the trainer load only when training
    run_dir = cfg.run_dir
    exists = run_dir.is_dir() and any(run_dir.iterdir())
    reused = exists and is_finished(run_dir, seeds)
    try:
        return runner(cfg, seeds, resume=exists), reused
    except RunFolderExistsError as e:  # saved with another config: say how to redo it from here
        raise RunFolderExistsError(f"{e}; to redo it, delete {run_dir} or choose another --name") from None


def run_ablations(
    base: RunConfig,
    seeds: list[int] | tuple[int, ...] = (),
    only: list[str] | tuple[str, ...] = (),
    runner: Runner | None = None,
    log: Callable[[str], None] = print,
) -> tuple[list[VariantResult], Path]:
    """Run (or reuse) every selected variant of ``base``; write the table; return the results and its folder.

    The variants' run folders and the table go to ``<base.output_dir>/<base.name>/``.
    """
    seeds = list(seeds) or [base.train.seed]
    out_root = base.run_dir
    names = variant_names(only)
    configs = {n: variant_config(base, n, out_root) for n in names}  # all validated before any training
    results: list[VariantResult] = []
    seen: dict[str, VariantResult] = {}
    for name in names:
        cfg = configs[name]
        key = repr(_identity(cfg))
        if key in seen:
            first = seen[key]
            log(f"[{name}] same config as {first.name}: its result is reused")
            results.append(VariantResult(name, VARIANTS[name], first.run, True, first.name))
            continue
        log(f"[{name}] {', '.join(VARIANTS[name]) or 'base config'} -> {cfg.run_dir}")
        out, reused = run_or_reuse(cfg, seeds, runner)
        if reused:
            log(f"[{name}] finished before: results read from {cfg.run_dir}")
        result = VariantResult(name, VARIANTS[name], out, reused)
        seen[key] = result
        results.append(result)
        write_table(results, out_root, seeds)  # the table grows as variants finish
    write_table(results, out_root, seeds)
    return results, out_root


# --------------------------------------------------------------------------------------------- the table
def family_of(metrics: dict) -> str:
    """The metric family whose keys a metrics dict holds (``erc``, ``mosi`` or ``sims``)."""
    for family, keys in FAMILY_KEYS.items():
        if all(k in metrics for k in keys):
            return family
    raise ValueError(f"no metric family matches keys {sorted(metrics)}")


def expert_gate_cell(run: RunResult, dataset: str | None = None) -> str:
    """The level-2 gate's mean weight per expert over ``dataset``'s (None: every dataset's) test predictions of every
    seed ("-" for a model without that gate): whether a variant spreads its weight or collapses onto one expert."""
    from egmf.evaluation.report import mean_gates, read_predictions

    preds = []
    for seed in run.seeds:
        path = run.run_dir / f"seed_{seed}" / "predictions_test.jsonl"
        if path.is_file():
            preds += [p for p in read_predictions(path) if dataset is None or p.dataset == dataset]
    weights = mean_gates(preds).get("expert", {}) if preds else {}
    return ", ".join(f"{k} {v:.2f}" for k, v in weights.items()) or "-"


def table_rows(results: list[VariantResult]) -> list[dict]:
    """One row per (variant, dataset): metric means and stds, seeds, train seconds, provenance."""
    rows = []
    for r in results:
        for dataset, summary in r.run.summary.items():
            rows.append({
                "variant": r.name, "dataset": dataset, "family": family_of(summary),
                "overrides": "; ".join(r.overrides), "seeds": len(r.run.seeds),
                "train_seconds": r.run.train_seconds, "same_as": r.same_as or "",
                "run_dir": str(r.run.run_dir), "summary": summary,
                "expert_gate": expert_gate_cell(r.run, dataset),
            })
    return rows


def write_table(results: list[VariantResult], out_dir: Path, seeds: list[int]) -> tuple[Path, Path]:
    """``ablation.md`` (one markdown table per dataset, percents) and ``ablation.csv`` (fractions, full precision)."""
    rows = table_rows(results)
    md = [
        "# Ablations",
        "",
        f"Test metrics, mean ± std over seeds {', '.join(map(str, seeds))} (population std, as MMSA). "
        "Accuracies and F1 in percent; MAE and Corr raw. Expert gate: the level-2 gate's mean weight per expert "
        "over the test predictions. Train time: mean seconds per seed.",
        "",
    ]
    csv_rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        group = [r for r in rows if r["dataset"] == dataset]
        cells = [
            {"variant": r["variant"] + (f" (= {r['same_as']})" if r["same_as"] else ""),
             "overrides": r["overrides"] or "-", **metric_cells(r["summary"], r["family"]),
             "expert gate (test mean)": r["expert_gate"],
             "train s": "nan" if math.isnan(r["train_seconds"]) else f"{r['train_seconds']:.1f}"}
            for r in group
        ]
        md += [f"## {dataset}", "", to_markdown(pd.DataFrame(cells), labels=2), ""]
        csv_rows += [{k: r[k] for k in ("variant", "dataset", "overrides", "seeds", "train_seconds", "same_as",
                                        "expert_gate", "run_dir")} | metric_numbers(r["summary"], r["family"]) for r in group]
    md_path, csv_path = out_dir / "ablation.md", out_dir / "ablation.csv"
    write_text_atomic(md_path, "\n".join(md))
    write_csv(pd.DataFrame(csv_rows), csv_path)
    return md_path, csv_path
