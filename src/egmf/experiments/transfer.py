"""Cross-lingual transfer: train on one dataset, evaluate on another of the same kind in the other language.

    egmf transfer --config configs/meld.yaml --target-dataset cherma --target-path /data/CHERMA --reverse
    egmf transfer --config configs/mosei.yaml --target-dataset simsv2 --target-path /data/SIMSv2/unaligned.pkl \
        --reverse-config configs/simsv2.yaml

The model trained on the source answers in the SOURCE's answer space (the same prompt, label words and
score range it was trained on; only the utterance and its features come from the target), and its answer
is mapped into the target's space before the target's own metrics score it:

* emotions (ERC) through :data:`ERC_LABEL_MAPS`. MELD <-> CHERMA: joy 高兴, sadness 悲伤, anger 愤怒,
  surprise 惊奇, fear 恐惧, disgust 厌恶, neutral 平静 (a bijection, used the other way for the reverse);
  datasets with the same label words map to themselves. Label sets of which one holds the other map their
  shared words: MELD's sentiments (neutral, positive, negative) -> a binary positive/negative set, where a
  ``neutral`` answer counts as an error (reported as "outside labels"), and back, where the target samples the
  binary model cannot answer (MELD's neutral ones) are left out and counted.
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

Sentence vectors (``text_source`` ``sentence``, or ``auto`` on data without text features) of the target are
made with the encoder the source model was trained with (under ``model.sentence_encoder: auto``, the one of
the source's language); name ``multilingual-e5-small`` so both languages share one vector space.

Input statistics. Every model standardises its inputs with the mean / std of its own train split, stored in the
checkpoint (:mod:`egmf.model.standardize`), and by default the target's features go through the *source's*
statistics. Two languages' sentence vectors form two clouds apart in the shared space (MELD's 3-way e5 + LR
calls 93% of the Chinese reviews neutral, ``benchmarks/results/chinese_reviews_xlanchors.md``), so
``input_statistics=("source", "target")`` also scores each cross-lingual direction with the fed features
standardised by the target's own train split -- its inputs only, never its labels: the per-corpus
normalisation of cross-corpus emotion recognition. Each choice is a row of its own.

Label prior. A model answers under the class prior of its train data; a target with another (MELD's sentiments
are 47% neutral, the reviews have no neutral one) gets that prior's answers. ``label_priors=("as_trained",
"em")`` also scores each cross-lingual direction with the answers re-chosen under the target's class prior,
estimated by EM from the scored inputs' label probabilities alone (Saerens et al. 2002,
:mod:`egmf.evaluation.label_shift`); the prior the model answers with is its mean probability on its own valid
inputs. It reads the target's inputs, never their labels: a transductive adaptation, not zero-shot, and its
rows say so.

Evaluation: the target's test split (its valid split where it has none), restricted to the samples whose
label the source can answer. With ``--reverse`` each cross-lingual row stands beside the target-language model
scored on the same samples ("in-language"); without, beside the source model on its own split ("in-domain").

Folders under ``<output>/<name>/``: ``transfer_train_<dataset>/`` (normal run folders, reused when
finished), ``transfer_<source>_to_<target>/seed_<s>/`` and ``in_language_<target>_for_<source>/seed_<s>/``
(metrics.json, predictions_test.jsonl with the mapped answers) and the table ``transfer.md`` + ``transfer.csv``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from egmf.atomic import write_json_atomic, write_text_atomic
from egmf.config import DatasetEntry, RunConfig, config_from_dict
from egmf.data.schema import MODALITIES, SPLITS, DatasetInfo, Sample, is_pooled_key, pooled_name
from egmf.errors import ConfigError
from egmf.evaluation.aggregate import (aggregate_seeds, format_cell, metric_cells, metric_numbers, to_markdown,
                                      write_csv)
from egmf.experiments.ablation import Runner, run_or_reuse
from egmf.model.base import Prediction
from egmf.model.standardize import FeatureStandardizer, Statistics
from egmf.typed_config import apply_overrides, to_dict

# Emotion words of one dataset -> the other's; the reverse direction uses the inverse.
ERC_LABEL_MAPS: dict[tuple[str, str], dict[str, str]] = {
    ("meld", "cherma"): {
        "joy": "高兴", "sadness": "悲伤", "anger": "愤怒", "surprise": "惊奇",
        "fear": "恐惧", "disgust": "厌恶", "neutral": "平静",
    },
}


# ---------------------------------------------------------------------------------------- answer mapping
def label_map(source: DatasetInfo, target: DatasetInfo) -> dict[str, str | None]:
    """Source label word -> target label word; ``None`` for a source word the target has no word for.

    A known mapping (:data:`ERC_LABEL_MAPS`, either way round) or the same label words give a bijection. Label
    sets of which one holds the other (MELD's 3 sentiments and a binary positive/negative set) map their shared
    words to themselves: a source word outside the target's labels (``neutral`` on a binary target) maps to
    ``None`` and counts as an error, and a target label the source lacks cannot be answered (the transfer leaves
    those samples out, :func:`scorable_labels`).
    """
    if set(source.labels) == set(target.labels):
        return {w: w for w in source.labels}
    mapping = ERC_LABEL_MAPS.get((source.name, target.name))
    if mapping is None and (target.name, source.name) in ERC_LABEL_MAPS:
        mapping = {t: s for s, t in ERC_LABEL_MAPS[(target.name, source.name)].items()}
    if mapping is not None and set(mapping) == set(source.labels) and set(mapping.values()) == set(target.labels):
        return dict(mapping)
    src, tgt = set(source.labels), set(target.labels)
    if len(src & tgt) >= 2 and (src <= tgt or tgt <= src):
        return {w: (w if w in tgt else None) for w in source.labels}
    known = ", ".join(f"{a} <-> {b}" for a, b in ERC_LABEL_MAPS)
    raise ConfigError(
        f"transfer: no label mapping from {source.name} ({', '.join(source.labels)}) to {target.name} "
        f"({', '.join(target.labels)}); known mappings: {known} (7 emotions; add one to "
        "egmf.experiments.transfer.ERC_LABEL_MAPS), or label sets of which one contains the other "
        "(e.g. neutral/positive/negative -> positive/negative)"
    )


def scorable_labels(source: DatasetInfo, target: DatasetInfo) -> tuple[str, ...] | None:
    """The target labels some source answer maps to (target order); ``None`` for MSA (every score is scored)."""
    if source.task == "msa":
        return None
    reached = set(label_map(source, target).values())
    return tuple(w for w in target.labels if w in reached)


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
    # An answer with no target word keeps the source's word: the predictions file shows what the model said,
    # and the metrics count it as an error (evaluate_checkpoint_on).
    return lambda w: mapping[w] if mapping.get(w) is not None else w


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


# What standardises a target's fed features: the source's train statistics (as trained) or the target train
# split's own inputs (no labels).
INPUT_STATISTICS = ("source", "target")
# The class prior the answers are chosen under: the model's own (as trained) or the scored inputs' prior
# estimated by EM without their labels (label shift, egmf.evaluation.label_shift).
LABEL_PRIORS = ("as_trained", "em")


def use_target_statistics(model, source: str, target_stats: dict[str, tuple], status: dict[str, str]) -> list[str]:
    """Standardise the features fed from the target with the target's own train statistics: the model's
    standardiser entries of ``source`` for every fed modality / pooled set are replaced by ``target_stats`` (one
    dataset's ``{key: (mean, std)}``, :func:`egmf.training.data.feature_statistics`); the rest stay. Returns the
    keys replaced. A fed key the target's train split has no statistics for is refused."""
    keys = [k for k, st in status.items() if st.startswith("fed") and "LLM embeddings" not in st]
    missing = [k for k in keys if k not in target_stats]
    if missing:
        raise ConfigError(f"transfer: input statistics 'target' needs the target's train split features of "
                          f"{', '.join(missing)}; it has none (a train split with those features is needed)")
    found = [m for m in model.modules() if isinstance(m, FeatureStandardizer)]
    if not found:
        raise ConfigError(f"transfer: input statistics 'target': the {type(model).__name__} model has no input "
                          "standardiser to refit")
    for standardizer in found:
        stats = standardizer.statistics()
        stats.setdefault(source, {}).update({k: target_stats[k] for k in keys})
        standardizer.fit(stats)
    return keys


def evaluate_checkpoint_on(
    checkpoint: Path,
    target: DatasetInfo,
    target_samples: list[Sample],
    target_dims: dict[str, int],
    out_dir: Path,
    decoding: str | None = None,
    modalities: Sequence[str] | None = None,
    scored_labels: Sequence[str] | None = None,
    target_statistics: dict[str, tuple] | None = None,
    label_prior: str = "as_trained",
    source_inputs: list[Sample] | None = None,
) -> tuple[dict, dict[str, str]]:
    """Score a one-dataset checkpoint on another dataset's samples; writes metrics.json and predictions.

    ``target_statistics`` (the target train split's ``{key: (mean, std)}``) standardises the fed features with
    the target's own statistics instead of the source's (:func:`use_target_statistics`).

    ``label_prior="em"`` (ERC): the model's label probabilities on the scored samples are moved to their class
    prior, estimated from those samples' inputs alone by EM (:mod:`egmf.evaluation.label_shift`); the prior the
    model answers with is its mean probability on ``source_inputs`` (samples of its own dataset, e.g. its valid
    split). No target label is read; ``metrics.json`` records both priors.

    ERC: an answer that maps to no target word (a 3-way model's ``neutral`` on a binary target) is an error;
    ``metrics["outside_labels"]`` is the share of answers outside ``scored_labels`` (default: the target's
    labels; pass the labels the evaluated samples are restricted to, so a target-language model's ``neutral``
    on positive/negative samples counts there too).
    """
    statistics = "source" if target_statistics is None else "target"
    scored = evaluate_checkpoint_choices(checkpoint, target, target_samples, target_dims,
                                         {(statistics, label_prior): out_dir}, decoding, modalities, scored_labels,
                                         target_statistics, source_inputs)
    return scored[statistics, label_prior]


def evaluate_checkpoint_choices(
    checkpoint: Path,
    target: DatasetInfo,
    target_samples: list[Sample],
    target_dims: dict[str, int],
    out_dirs: dict[tuple[str, str], Path],
    decoding: str | None = None,
    modalities: Sequence[str] | None = None,
    scored_labels: Sequence[str] | None = None,
    target_statistics: dict[str, tuple] | None = None,
    source_inputs: list[Sample] | None = None,
) -> dict[tuple[str, str], tuple[dict, dict[str, str]]]:
    """:func:`evaluate_checkpoint_on` for several (input statistics, label prior) choices at once, each written
    to its ``out_dirs[(statistics, prior)]``: the model is loaded once, the target is predicted once per
    input-statistics choice (the label priors only re-choose those answers) and the source inputs once.
    ``target_statistics`` is required where a choice names ``"target"``."""
    from egmf.evaluation.evaluate import predict_samples
    from egmf.training import checkpoint as ckpt

    for statistics, prior in out_dirs:
        if statistics not in INPUT_STATISTICS:
            raise ConfigError(f"input statistics: got {statistics!r}; valid choices: {', '.join(INPUT_STATISTICS)}")
        if prior not in LABEL_PRIORS:
            raise ConfigError(f"label prior: got {prior!r}; valid choices: {', '.join(LABEL_PRIORS)}")
        if statistics == "target" and target_statistics is None:
            raise ConfigError("input statistics 'target' needs the target train split's statistics")
    _, infos, dims = ckpt.read_meta(checkpoint)
    if len(infos) != 1:
        raise ConfigError(f"{checkpoint}: transfer needs a model trained on one dataset, this one has {sorted(infos)}")
    (source,) = infos.values()
    to_target = answer_mapper(source, target)
    model, cfg, _ = ckpt.load_model(checkpoint)
    samples = [s for s in target_samples if s.label is not None]
    if not samples:
        raise ConfigError(f"transfer: the {target.name} evaluation split has no labelled samples")
    adapted, status = adapt_samples(samples, source, dims[source.name], target_dims, cfg.model.text_source, modalities)
    priors = list(dict.fromkeys(prior for _, prior in out_dirs))
    if "em" in priors and (source.task != "erc" or not source_inputs):
        raise ConfigError(f"label prior 'em' needs an emotion/sentiment-label source model and inputs of its own "
                          f"dataset; {source.name} is {source.task} with {len(source_inputs or [])} source inputs")
    decoding = decoding or cfg.eval.decoding
    # The source prior is read before the target's statistics replace the model's own.
    reference = predict_samples(model, source_inputs, cfg.eval.batch_size, decoding) if "em" in priors else []
    out: dict[tuple[str, str], tuple[dict, dict[str, str]]] = {}
    # 'source' first: 'target' refits the model's standardiser, and the model is not reloaded.
    for statistics in sorted(dict.fromkeys(st for st, _ in out_dirs), key=INPUT_STATISTICS.index):
        fed = dict(status)
        if statistics == "target":
            use_target_statistics(model, source.name, target_statistics, fed)
        preds = predict_samples(model, adapted, cfg.eval.batch_size, decoding)
        for prior in priors:
            if (statistics, prior) in out_dirs:
                metrics = _score_answers(preds, samples, source, target, to_target, statistics, prior, reference,
                                         scored_labels, checkpoint, out_dirs[statistics, prior], fed)
                out[statistics, prior] = metrics, fed
    return out


def _score_answers(preds: list[Prediction], samples: list[Sample], source: DatasetInfo, target: DatasetInfo,
                   to_target: Callable, statistics: str, label_prior: str, reference: list[Prediction],
                   scored_labels: Sequence[str] | None, checkpoint: Path, out_dir: Path,
                   status: dict[str, str]) -> dict:
    """The source-space predictions ``preds`` of ``samples`` mapped into the target's answers (under
    ``label_prior``) and scored; writes metrics.json and predictions_test.jsonl into ``out_dir``."""
    from egmf.evaluation.metrics import compute_metrics
    from egmf.evaluation.report import write_predictions

    shift = None
    if label_prior == "em":
        preds, shift = _adapt_label_prior(preds, reference, source, checkpoint)
    mapped = [dataclasses.replace(p, dataset=target.name, prediction=to_target(p.prediction)) for p in preds]
    answers, truths = [p.prediction for p in mapped], [s.label for s in samples]
    if target.task == "msa":
        for p in mapped:
            p.score = p.prediction
        metrics = compute_metrics(target, answers, truths)
    else:
        # Answers without a target word join the label set, so they are scored as the errors they are.
        extra = tuple(dict.fromkeys(a for a in answers if a not in target.labels))
        metrics = compute_metrics(dataclasses.replace(target, labels=target.labels + extra), answers, truths)
        scored = set(scored_labels if scored_labels is not None else target.labels)
        metrics["outside_labels"] = sum(a not in scored for a in answers) / len(answers)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(mapped, out_dir / "predictions_test.jsonl")
    record = {"source": source.name, "target": target.name, "modalities": status, "n": len(samples),
              "input_statistics": statistics, "label_prior": label_prior, "test": metrics}
    if shift is not None:
        record["label_prior_estimate"] = shift
    write_json_atomic(out_dir / "metrics.json", record, default=float)
    return metrics


def _adapt_label_prior(preds: list[Prediction], reference: list[Prediction], source: DatasetInfo,
                       checkpoint: Path) -> tuple[list[Prediction], dict]:
    """``preds``' answers re-chosen under the class prior EM estimates from them (label shift), the source prior
    being the mean of ``reference``'s probabilities; returns the new predictions and both priors."""
    from egmf.evaluation.label_shift import adapt_to_label_shift, mean_probabilities, probability_matrix

    labels = list(source.labels)
    where = f"{checkpoint} on"
    src = mean_probabilities(probability_matrix([p.probabilities for p in reference], labels, f"{where} its own inputs"))
    shift = adapt_to_label_shift(probability_matrix([p.probabilities for p in preds], labels, f"{where} the target"),
                                 src)
    adapted = [dataclasses.replace(p, prediction=labels[int(np.argmax(row))],
                                   probabilities={lab: float(x) for lab, x in zip(labels, row)})
               for p, row in zip(preds, shift.probabilities)]
    estimate = {"source": dict(zip(labels, map(float, src))), "target": dict(zip(labels, map(float, shift.prior))),
                "iterations": shift.iterations, "converged": shift.converged, "n_source_inputs": len(reference)}
    return adapted, estimate


# ------------------------------------------------------------------------------------------ the command
def _with_dataset(cfg: RunConfig, entry: DatasetEntry, out_root: Path, name: str) -> RunConfig:
    data = to_dict(cfg)
    data["data"]["datasets"] = [to_dict(entry)]
    apply_overrides(data, [f"output_dir={out_root}", f"name={name}"])
    return config_from_dict(data)


@dataclasses.dataclass
class EvalSplit:
    """The samples a direction is scored on: the target's test split (its valid split where it has no test)."""

    info: DatasetInfo
    split: str
    samples: list[Sample]
    dims: dict[str, int]
    train_statistics: Statistics  # of its train split's inputs; computed for input_statistics 'target' only
    valid: list[Sample]  # its valid split (empty where it has none): the inputs that give a model its own prior (em)


def _eval_split(cfg: RunConfig, entry: DatasetEntry, sentence_encoder: str, train_statistics: bool) -> EvalSplit:
    """``entry``'s evaluation split loaded as ``cfg`` loads its data (text source, frame caps, limits), with the
    sentence vectors of ``sentence_encoder`` (the encoder the scoring model was trained with)."""
    from egmf.training.data import feature_statistics, load_training_data

    # The train split is loaded (and its sentence vectors made) only for its statistics: a target's train split
    # can be far larger than the split scored.
    data = load_training_data(dataclasses.replace(cfg.data, datasets=[entry]), cfg.model.text_source,
                              sentence_encoder, SPLITS if train_statistics else ("valid", "test"))
    (info,) = data.infos.values()
    split = "test" if data.split("test") else "valid"
    if not data.split(split):
        raise ConfigError(f"transfer: {entry.name} at {entry.path} has no test or valid split to evaluate on")
    return EvalSplit(info, split, data.split(split), data.feature_dims[info.name],
                     feature_statistics(data.split("train")) if train_statistics else {}, data.split("valid"))


def run_transfer(
    cfg: RunConfig,
    target: DatasetEntry,
    seeds: Sequence[int] = (),
    reverse: bool = False,
    reverse_cfg: RunConfig | None = None,
    modalities: Sequence[str] | None = None,
    runner: Runner | None = None,
    log: Callable[[str], None] = print,
    input_statistics: Sequence[str] = ("source",),
    label_priors: Sequence[str] = ("as_trained",),
) -> tuple[list[dict], Path]:
    """Train on ``cfg``'s dataset, score on ``target``'s evaluation split (and the reverse); write the table.

    Each direction is scored on the target samples whose label the source can answer (a binary model cannot
    answer MELD's ``neutral``: those samples are left out and counted). With both directions trained, each
    cross-lingual row stands beside the target-language model scored on the very same samples ("in-language");
    with one direction, beside the source model on its own evaluation split ("in-domain"). Each cross-lingual
    direction is scored once per ``input_statistics`` choice (:data:`INPUT_STATISTICS`) and per ``label_priors``
    choice (:data:`LABEL_PRIORS`; 'em' re-chooses the answers under the scored inputs' estimated class prior,
    with the source's valid inputs giving the prior the model answers with).
    """
    bad = [c for c in input_statistics if c not in INPUT_STATISTICS]
    if bad or not input_statistics:
        raise ConfigError(f"input statistics: invalid value {bad[0] if bad else 'none'!r}; valid choices: "
                          f"{', '.join(INPUT_STATISTICS)} (one or both)")
    bad = [c for c in label_priors if c not in LABEL_PRIORS]
    if bad or not label_priors:
        raise ConfigError(f"label prior: invalid value {bad[0] if bad else 'none'!r}; valid choices: "
                          f"{', '.join(LABEL_PRIORS)} (one or both)")
    if len(cfg.data.datasets) != 1:
        raise ConfigError(f"transfer: the config must name one source dataset, it names {len(cfg.data.datasets)}")
    source = cfg.data.datasets[0]
    if source.name == target.name and source.path == target.path:
        raise ConfigError(f"transfer: source and target are both {source.name!r}; name a dataset of the other language")
    seeds = list(seeds) or [cfg.train.seed]
    out_root = cfg.run_dir
    directions = [(cfg, source, target)]
    if reverse_cfg is not None:
        if len(reverse_cfg.data.datasets) != 1:
            raise ConfigError(f"--reverse-config: expected a config training on {target.name} alone")
        directions.append((reverse_cfg, reverse_cfg.data.datasets[0], source))
    elif reverse:
        directions.append((cfg, target, source))
    cache: dict[tuple, EvalSplit] = {}

    def eval_split(c: RunConfig, e: DatasetEntry, trained_on: DatasetEntry) -> EvalSplit:
        """``e`` as the model trained by ``c`` on ``trained_on`` reads it: that model's sentence encoder."""
        from egmf.features.text import encoder_for

        encoder = c.model.sentence_encoder
        if encoder == "auto" and e is not trained_on:  # 'auto' chose by the training data's language
            encoder = encoder_for("auto", eval_split(c, trained_on, trained_on).info.lang)
        key = (repr(to_dict(e)), c.model.text_source, encoder, repr(c.data.max_frames), repr(c.data.limit))
        if key not in cache:
            cache[key] = _eval_split(c, e, encoder, "target" in input_statistics)
        return cache[key]

    # Load every evaluation split and check every answer mapping before any training. Datasets are named by
    # their DatasetInfo (two custom folders are both entries named 'custom').
    for c, train_on, evaluate_on in directions:
        own, other = eval_split(c, train_on, train_on).info, eval_split(c, evaluate_on, train_on).info
        if own.name == other.name:
            raise ConfigError(f"transfer: source and target are both {own.name!r}; name a dataset of the other "
                              "language")
        answer_mapper(own, other)
        if "em" in label_priors and own.task != "erc":
            raise ConfigError(f"label prior 'em' needs an emotion/sentiment-label source model; {own.name} is "
                              f"{own.task} (scores have no class prior to move)")
    if reverse_cfg is not None:
        trains_on = eval_split(reverse_cfg, directions[1][1], directions[1][1]).info.name
        if trains_on != eval_split(cfg, target, source).info.name:
            raise ConfigError(f"--reverse-config: expected a config training on {target.name} alone, it trains on "
                              f"{trains_on}")
    trained: dict[str, tuple[RunConfig, DatasetEntry, RunConfig, object]] = {}  # dataset -> (base, entry, run, result)
    for base, train_on, evaluate_on in directions:
        name, target_name = eval_split(base, train_on, train_on).info.name, eval_split(base, evaluate_on, train_on).info.name
        run_cfg = _with_dataset(base, train_on, out_root, f"transfer_train_{name}")
        log(f"[{name} -> {target_name}] training on {name} in {run_cfg.run_dir}")
        result, reused = run_or_reuse(run_cfg, seeds, runner)
        if reused:
            log(f"[{name}] finished before: results read from {run_cfg.run_dir}")
        trained[name] = (base, train_on, run_cfg, result)
    rows = []
    for base, train_on, evaluate_on in directions:
        source_info = eval_split(base, train_on, train_on).info
        split = eval_split(base, evaluate_on, train_on)
        src, tgt = source_info.name, split.info.name
        scorable = scorable_labels(source_info, split.info)
        kept = [s for s in split.samples if scorable is None or s.label in scorable]
        left_out = Counter(str(s.label) for s in split.samples if scorable is not None and s.label not in scorable)
        if not kept:
            raise ConfigError(f"transfer: none of the {tgt} {split.split} samples has a label that {src} can answer")
        kept_ids = {s.id for s in kept}
        source_split = eval_split(base, train_on, train_on)
        own_inputs = source_split.valid or source_split.samples
        choices = [(c, p) for c in dict.fromkeys(input_statistics) for p in dict.fromkeys(label_priors)]
        own_stats = split.train_statistics.get(split.info.name, {}) if "target" in input_statistics else None
        if own_stats is not None and not own_stats:
            raise ConfigError(f"transfer: input statistics 'target' needs {tgt}'s train split features; "
                              f"{tgt} has no train split with features")
        folders = {(c, p): out_root / f"transfer_{src}_to_{tgt}{'' if c == 'source' else '_target_statistics'}"
                                      f"{'' if p == 'as_trained' else '_em_prior'}" for c, p in choices}
        cross = _score(trained[src][2], seeds, split.info, kept, split.dims, scorable, modalities, folders,
                       own_stats, own_inputs)
        rows += [_row(src, tgt, "cross-lingual", cross[c, p], split, len(kept), left_out, c, p) for c, p in choices]
        if tgt in trained:  # the target-language model on the very same samples
            own_base, own_entry, own_run, _ = trained[tgt]
            own = eval_split(own_base, own_entry, own_entry)
            same = [s for s in own.samples if s.id in kept_ids]
            scores = _score(own_run, seeds, own.info, same, own.dims, scorable, None,
                            {("source", "as_trained"): out_root / f"in_language_{tgt}_for_{src}"})
            rows.append(_row(tgt, tgt, "in-language", scores["source", "as_trained"], own, len(same), left_out))
        else:
            result = trained[src][3]
            in_domain = [s.test[src] for s in result.seeds.values() if src in s.test]
            if in_domain:
                own = eval_split(base, train_on, train_on)
                rows.append(_row(src, src, "in-domain", (in_domain, "as trained"), own, len(own.samples), Counter()))
        write_table(rows, out_root, seeds)
    return rows, out_root


def _score(run_cfg: RunConfig, seeds: Sequence[int], info: DatasetInfo, samples: list[Sample], dims: dict[str, int],
           scorable: Sequence[str] | None, modalities: Sequence[str] | None, folders: dict[tuple[str, str], Path],
           target_statistics: dict[str, tuple] | None = None,
           source_inputs: list[Sample] | None = None) -> dict[tuple[str, str], tuple[list[dict], str]]:
    """Each seed's best checkpoint of ``run_cfg`` scored on ``samples`` under each (input statistics, label prior)
    choice of ``folders`` (its folder; a ``seed_<s>`` folder inside each): per choice, (metrics per seed,
    modalities fed). Each checkpoint is loaded and the target predicted once per input-statistics choice."""
    per_seed: dict[tuple[str, str], list[dict]] = {choice: [] for choice in folders}
    fed: dict[tuple[str, str], str] = {}
    for seed in seeds:
        best = run_cfg.run_dir / f"seed_{seed}" / "checkpoints" / "best"
        scored = evaluate_checkpoint_choices(best, info, samples, dims,
                                             {c: folder / f"seed_{seed}" for c, folder in folders.items()},
                                             modalities=modalities, scored_labels=scorable,
                                             target_statistics=target_statistics, source_inputs=source_inputs)
        for choice, (metrics, status) in scored.items():
            per_seed[choice].append(metrics)
            fed[choice] = fed_modalities(status)
    return {choice: (per_seed[choice], fed.get(choice, fed_modalities({}))) for choice in folders}


def _row(train: str, test: str, kind: str, scores: tuple[list[dict], str], split: EvalSplit, n: int,
         left_out: Counter, statistics: str = "source", label_prior: str = "as_trained") -> dict:
    per_seed, fed = scores
    return {"direction": f"{train} -> {test}", "train": train, "test": test, "kind": kind, "modalities": fed,
            "input_statistics": "as trained" if statistics == "source" else "target's train split",
            "label_prior": "as trained" if label_prior == "as_trained" else "EM on the scored inputs",
            "split": split.split, "n_test": n,
            "left_out": ", ".join(f"{w} {c}" for w, c in left_out.most_common()) or "-",
            "family": split.info.metric_family, "seeds": len(per_seed), "summary": aggregate_seeds(per_seed)}


def write_table(rows: list[dict], out_dir: Path, seeds: Sequence[int]) -> tuple[Path, Path]:
    """``transfer.md`` (one table per metric family) and ``transfer.csv`` (fractions, full precision)."""
    md = ["# Cross-lingual transfer", "",
          f"Evaluation split of the evaluated dataset (test; valid where it has none); mean ± std over seeds "
          f"{', '.join(map(str, seeds))}. Cross-lingual rows map the model's answers into the target's labels / "
          "score range (egmf.experiments.transfer); 'left out': target samples whose label the source model cannot "
          "answer; 'outside labels': answers outside the scored labels (counted as errors). In-language rows score "
          "the target-language model on the same samples. 'input statistics': the mean / std the fed features are "
          "standardised with, the model's own ('as trained') or the target train split's inputs (no labels). "
          "'label prior': the class prior answers are chosen under, the model's own ('as trained') or the scored "
          "inputs' prior estimated by EM from them without their labels (label shift; egmf.evaluation.label_shift). "
          "Accuracies and F1 in percent; MAE and Corr raw.", ""]
    csv_rows = []
    for family in dict.fromkeys(r["family"] for r in rows):
        group = [r for r in rows if r["family"] == family]
        cells = []
        for r in group:
            cell = {"direction": r["direction"], "kind": r["kind"], "modalities fed": r["modalities"],
                    "input statistics": r["input_statistics"], "label prior": r["label_prior"],
                    "split": r["split"], "n": str(r["n_test"]),
                    "left out": r["left_out"]}
            cell.update(metric_cells(r["summary"], family))
            if family == "erc":
                cell["outside labels"] = format_cell(r["summary"].get("outside_labels"), percent=True)
            cells.append(cell)
        md += [to_markdown(pd.DataFrame(cells), labels=8), ""]
        csv_rows += [{k: r[k] for k in ("direction", "train", "test", "kind", "modalities", "input_statistics",
                                        "label_prior", "split", "n_test", "left_out", "seeds")}
                     | metric_numbers(r["summary"], family)
                     | {f"outside_labels_{k}": v for k, v in r["summary"].get("outside_labels", {}).items()}
                     for r in group]
    md_path, csv_path = out_dir / "transfer.md", out_dir / "transfer.csv"
    write_text_atomic(md_path, "\n".join(md))
    write_csv(pd.DataFrame(csv_rows), csv_path)
    return md_path, csv_path
