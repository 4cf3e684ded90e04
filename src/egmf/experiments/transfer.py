"""Cross-lingual transfer: train on one dataset, evaluate on another of the same kind in the other language.

    egmf transfer --config configs/meld.yaml --target-dataset cherma --target-path /data/CHERMA --reverse
    egmf transfer --config configs/mosei.yaml --target-dataset simsv2 --target-path /data/SIMSv2/unaligned.pkl \
        --reverse-config configs/simsv2.yaml

The model trained on the source answers in the SOURCE's answer space (the same prompt, label words and
score range it was trained on; only the utterance and its features come from the target), and its answer
is mapped into the target's space before the target's own metrics score it:

* emotions (ERC) through :data:`ERC_LABEL_MAPS`. MELD <-> CHERMA: joy 高兴, sadness 悲伤, anger 愤怒,
  surprise 惊奇, fear 恐惧, disgust 厌恶, neutral 平静 (a bijection, used the other way for the reverse);
  datasets with the same label words map to themselves. MELD loaded with sentiment labels has no mapping.
* sentiment scores (MSA) linearly between the score ranges, then clipped: MOSEI [-3, 3] -> SIMS v2
  [-1, 1] divides by 3; the reverse multiplies by 3.

Features. The fusion projects each modality with weights sized for the source's feature dims, so a
target modality is fed only when its dim equals the source's (``modalities=None``, the default) and is
otherwise dropped, i.e. masked as missing, which every model handles; ``modalities=[...]`` names the ones
to feed and refuses (:class:`ConfigError`) one whose dims differ. Equal dims do not prove equal feature
spaces (MOSEI's and SIMS v2's 768-d text features come from an English and a Chinese BERT): the table
says which modalities were fed. The setting that transfers by construction is ``model.text_source=llm``:
the text reaches the fusion through the LLM's own input embeddings in both languages. (The embedded
SmolLM2 reads Chinese bytes but does not understand Chinese; use a multilingual LLM for real numbers.)

Folders under ``<output>/<name>/``: ``transfer_train_<dataset>/`` (normal run folders, reused when
finished), ``transfer_<source>_to_<target>/seed_<s>/`` (metrics.json, predictions_test.jsonl with the
mapped answers) and the table ``transfer.md`` + ``transfer.csv``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from egmf.atomic import write_json_atomic, write_text_atomic
from egmf.config import DataConfig, DatasetEntry, RunConfig, config_from_dict
from egmf.data.schema import MODALITIES, DatasetInfo, Sample, is_pooled_key, pooled_name
from egmf.errors import ConfigError
from egmf.evaluation.aggregate import aggregate_seeds, metric_cells, metric_numbers, to_markdown, write_csv
from egmf.experiments.ablation import Runner, run_or_reuse
from egmf.typed_config import apply_overrides, to_dict

# Emotion words of one dataset -> the other's; the reverse direction uses the inverse.
ERC_LABEL_MAPS: dict[tuple[str, str], dict[str, str]] = {
    ("meld", "cherma"): {
        "joy": "高兴", "sadness": "悲伤", "anger": "愤怒", "surprise": "惊奇",
        "fear": "恐惧", "disgust": "厌恶", "neutral": "平静",
    },
}


# ---------------------------------------------------------------------------------------- answer mapping
def label_map(source: DatasetInfo, target: DatasetInfo) -> dict[str, str]:
    """Source label word -> target label word, covering every label of both datasets exactly once."""
    if set(source.labels) == set(target.labels):
        return {w: w for w in source.labels}
    mapping = ERC_LABEL_MAPS.get((source.name, target.name))
    if mapping is None and (target.name, source.name) in ERC_LABEL_MAPS:
        mapping = {t: s for s, t in ERC_LABEL_MAPS[(target.name, source.name)].items()}
    if mapping is None or set(mapping) != set(source.labels) or set(mapping.values()) != set(target.labels):
        known = ", ".join(f"{a} <-> {b}" for a, b in ERC_LABEL_MAPS)
        raise ConfigError(
            f"transfer: no label mapping from {source.name} ({', '.join(source.labels)}) to {target.name} "
            f"({', '.join(target.labels)}); known mappings: {known} (7 emotions; add one to "
            "egmf.experiments.transfer.ERC_LABEL_MAPS)"
        )
    return mapping


def rescale(value: float, source_range: Sequence[float], target_range: Sequence[float]) -> float:
    """Map a score linearly from ``source_range`` onto ``target_range`` and clip it there."""
    (a, b), (c, d) = source_range, target_range
    mapped = c + (float(value) - a) * (d - c) / (b - a)
    return min(max(mapped, c), d)


def answer_mapper(source: DatasetInfo, target: DatasetInfo) -> Callable[[str | float], str | float]:
    """A function taking a source-space answer to the target's space; refuses datasets of different kinds."""
    if source.task != target.task:
        raise ConfigError(
            f"transfer: {source.name} is {source.task.upper()} and {target.name} is {target.task.upper()}; "
            "transfer needs two datasets of the same kind (ERC -> ERC, MSA -> MSA)"
        )
    if source.task == "msa":
        return lambda v: rescale(v, source.score_range, target.score_range)
    mapping = label_map(source, target)
    return lambda w: mapping[w]


# ------------------------------------------------------------------------------------------- the samples
def adapt_samples(
    samples: list[Sample],
    source: DatasetInfo,
    source_dims: dict[str, int],
    target_dims: dict[str, int],
    text_source: str,
    modalities: Sequence[str] | None = None,
) -> tuple[list[Sample], dict[str, str]]:
    """Target samples dressed as the source's (dataset name, language of the prompt), with the modalities the
    model can read; returns them and, per modality, what happened to it (for the table)."""
    bad = sorted(set(modalities or ()) - set(MODALITIES))
    if bad:
        raise ConfigError(f"--modalities: unknown modality {bad[0]!r}; valid choices: {', '.join(MODALITIES)}")
    status, keep = {}, set()
    for m in MODALITIES:
        want = modalities is None or m in modalities
        if m == "text" and text_source == "llm":
            status[m] = "fed (LLM embeddings)" if want else "dropped"
            continue  # the model embeds the utterance itself; nothing to carry
        s_dim, t_dim = int(source_dims.get(m, 0)), int(target_dims.get(m, 0))
        if s_dim == 0:
            if modalities is not None and m in modalities:
                raise ConfigError(f"--modalities {m}: the model was trained without {m} features ({source.name})")
            status[m] = "not used by the model"
        elif s_dim == t_dim and want:
            keep.add(m)
            status[m] = f"fed ({t_dim}-d)"
        elif modalities is not None and m in modalities:
            raise ConfigError(
                f"--modalities {m}: the model reads {s_dim}-d {m} features ({source.name}) and the target has "
                f"{t_dim or 'no'}{'-d' if t_dim else ''} {m} features; feature dims must match"
            )
        else:
            status[m] = f"dropped ({s_dim}-d vs {t_dim}-d)" if want else "dropped"
    # Pooled sets (eGeMAPS functionals, ...) follow the same rule as modalities: fed only where the model was
    # trained on the set with the same dim; a set of another width would not fit the model's projection.
    pooled_keep = set()
    for key in sorted(k for k in {**source_dims, **target_dims} if is_pooled_key(k)):
        s_dim, t_dim = int(source_dims.get(key, 0)), int(target_dims.get(key, 0))
        if s_dim and s_dim == t_dim:
            pooled_keep.add(pooled_name(key))
            status[key] = f"fed ({t_dim}-d)"
        elif s_dim:
            status[key] = f"dropped ({s_dim}-d vs {t_dim}-d)"
    adapted = [
        dataclasses.replace(
            s, dataset=source.name, lang=source.lang, label=None,
            text_feats=s.text_feats if "text" in keep else None,
            audio=s.audio if "audio" in keep else None,
            vision=s.vision if "vision" in keep else None,
            pooled={k: v for k, v in (s.pooled or {}).items() if k in pooled_keep},
        )
        for s in samples
    ]
    return adapted, status


def fed_modalities(status: dict[str, str]) -> str:
    """``text (LLM embeddings), audio (74-d)``: what the model read of the target, for the table."""
    fed = [f"{m} {st[4:]}" for m, st in status.items() if st.startswith("fed")]
    return ", ".join(fed) or "none (prompt text only)"


def evaluate_checkpoint_on(
    checkpoint: Path,
    target: DatasetInfo,
    target_samples: list[Sample],
    target_dims: dict[str, int],
    out_dir: Path,
    decoding: str | None = None,
    modalities: Sequence[str] | None = None,
) -> tuple[dict, dict[str, str]]:
    """Score a one-dataset checkpoint on another dataset's samples; writes metrics.json and predictions."""
    from egmf.evaluation.evaluate import predict_samples
    from egmf.evaluation.metrics import compute_metrics
    from egmf.evaluation.report import write_predictions
    from egmf.training import checkpoint as ckpt

    _, infos, dims = ckpt.read_meta(checkpoint)
    if len(infos) != 1:
        raise ConfigError(f"{checkpoint}: transfer needs a model trained on one dataset, this one has {sorted(infos)}")
    (source,) = infos.values()
    to_target = answer_mapper(source, target)
    model, cfg, _ = ckpt.load_model(checkpoint)
    samples = [s for s in target_samples if s.label is not None]
    if not samples:
        raise ConfigError(f"transfer: the {target.name} test split has no labelled samples")
    adapted, status = adapt_samples(samples, source, dims[source.name], target_dims, cfg.model.text_source, modalities)
    preds = predict_samples(model, adapted, cfg.eval.batch_size, decoding or cfg.eval.decoding)
    mapped = [dataclasses.replace(p, dataset=target.name, prediction=to_target(p.prediction)) for p in preds]
    if target.task == "msa":
        for p in mapped:
            p.score = p.prediction
    metrics = compute_metrics(target, [p.prediction for p in mapped], [s.label for s in samples])
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(mapped, out_dir / "predictions_test.jsonl")
    record = {"source": source.name, "target": target.name, "modalities": status, "n": len(samples), "test": metrics}
    write_json_atomic(out_dir / "metrics.json", record, default=float)
    return metrics, status


# ------------------------------------------------------------------------------------------ the command
def _with_dataset(cfg: RunConfig, entry: DatasetEntry, out_root: Path, name: str) -> RunConfig:
    data = to_dict(cfg)
    data["data"]["datasets"] = [to_dict(entry)]
    apply_overrides(data, [f"output_dir={out_root}", f"name={name}"])
    return config_from_dict(data)


def _test_split(cfg: RunConfig, entry: DatasetEntry):
    """The test split of ``entry`` loaded as ``cfg`` loads its data (text source, frame caps, limits)."""
    from egmf.training.data import load_training_data

    data = load_training_data(DataConfig([entry], cfg.data.max_frames, cfg.data.limit), cfg.model.text_source)
    (info,) = data.infos.values()
    if not data.split("test"):
        raise ConfigError(f"transfer: {entry.name} at {entry.path} has an empty test split")
    return info, data.split("test"), data.feature_dims[info.name]


def run_transfer(
    cfg: RunConfig,
    target: DatasetEntry,
    seeds: Sequence[int] = (),
    reverse: bool = False,
    reverse_cfg: RunConfig | None = None,
    modalities: Sequence[str] | None = None,
    runner: Runner | None = None,
    log: Callable[[str], None] = print,
) -> tuple[list[dict], Path]:
    """Train on ``cfg``'s dataset, score on ``target``'s test split (and the reverse); write the table."""
    if len(cfg.data.datasets) != 1:
        raise ConfigError(f"transfer: the config must name one source dataset, it names {len(cfg.data.datasets)}")
    source = cfg.data.datasets[0]
    if source.name == target.name:
        raise ConfigError(f"transfer: source and target are both {source.name!r}; name a dataset of the other language")
    seeds = list(seeds) or [cfg.train.seed]
    out_root = cfg.run_dir
    directions = [(cfg, source, target)]
    if reverse_cfg is not None:
        if len(reverse_cfg.data.datasets) != 1 or reverse_cfg.data.datasets[0].name != target.name:
            raise ConfigError(f"--reverse-config: expected a config training on {target.name} alone")
        directions.append((reverse_cfg, reverse_cfg.data.datasets[0], source))
    elif reverse:
        directions.append((cfg, target, source))
    # Load every test split and check every answer mapping before any training.
    cache: dict[tuple, tuple] = {}

    def test_split(c: RunConfig, e: DatasetEntry) -> tuple[DatasetInfo, list[Sample], dict[str, int]]:
        key = (repr(to_dict(e)), c.model.text_source, repr(c.data.max_frames), repr(c.data.limit))
        if key not in cache:
            cache[key] = _test_split(c, e)
        return cache[key]

    for c, train_on, evaluate_on in directions:
        answer_mapper(test_split(c, train_on)[0], test_split(c, evaluate_on)[0])
    rows = []
    for base, train_on, evaluate_on in directions:
        run_cfg = _with_dataset(base, train_on, out_root, f"transfer_train_{train_on.name}")
        log(f"[{train_on.name} -> {evaluate_on.name}] training on {train_on.name} in {run_cfg.run_dir}")
        result, reused = run_or_reuse(run_cfg, seeds, runner)
        if reused:
            log(f"[{train_on.name}] finished before: results read from {run_cfg.run_dir}")
        in_domain = [s.test[train_on.name] for s in result.seeds.values() if train_on.name in s.test]
        info, samples, dims = test_split(base, evaluate_on)
        cross, status = [], {}
        for seed in seeds:
            best = run_cfg.run_dir / f"seed_{seed}" / "checkpoints" / "best"
            folder = out_root / f"transfer_{train_on.name}_to_{evaluate_on.name}" / f"seed_{seed}"
            metrics, status = evaluate_checkpoint_on(best, info, samples, dims, folder, modalities=modalities)
            cross.append(metrics)
        rows.append(_row(train_on.name, evaluate_on.name, "cross-lingual", fed_modalities(status), len(samples),
                         info.metric_family, cross))
        if in_domain:
            own, own_test, _ = test_split(base, train_on)
            rows.append(_row(train_on.name, train_on.name, "in-domain", "as trained", len(own_test),
                             own.metric_family, in_domain))
        write_table(rows, out_root, seeds)
    return rows, out_root


def _row(train: str, test: str, kind: str, fed: str, n: int, family: str, per_seed: list[dict]) -> dict:
    return {"direction": f"{train} -> {test}", "train": train, "test": test, "kind": kind, "modalities": fed,
            "n_test": n, "family": family, "seeds": len(per_seed), "summary": aggregate_seeds(per_seed)}


def write_table(rows: list[dict], out_dir: Path, seeds: Sequence[int]) -> tuple[Path, Path]:
    """``transfer.md`` (one table per metric family) and ``transfer.csv`` (fractions, full precision)."""
    md = ["# Cross-lingual transfer", "",
          f"Test split of the evaluated dataset; mean ± std over seeds {', '.join(map(str, seeds))}. Cross-lingual rows "
          "map the model's answers into the target's labels / score range (egmf.experiments.transfer). "
          "Accuracies and F1 in percent; MAE and Corr raw.", ""]
    csv_rows = []
    for family in dict.fromkeys(r["family"] for r in rows):
        group = [r for r in rows if r["family"] == family]
        cells = [{"direction": r["direction"], "kind": r["kind"], "modalities fed": r["modalities"],
                  "n test": str(r["n_test"]), **metric_cells(r["summary"], family)} for r in group]
        md += [to_markdown(pd.DataFrame(cells), labels=3), ""]
        csv_rows += [{k: r[k] for k in ("direction", "train", "test", "kind", "modalities", "n_test", "seeds")}
                     | metric_numbers(r["summary"], family) for r in group]
    md_path, csv_path = out_dir / "transfer.md", out_dir / "transfer.csv"
    write_text_atomic(md_path, "\n".join(md))
    write_csv(pd.DataFrame(csv_rows), csv_path)
    return md_path, csv_path
