"""Quality on the real shared data: EGMF and every baseline through the one trainer (not a test).

    nohup .venv/bin/python benchmarks/quality.py meld --steps 300 > /tmp/quality_meld.log 2>&1 &
    nohup .venv/bin/python benchmarks/quality.py ravdess --steps 240 > /tmp/quality_ravdess.log 2>&1 &
    .venv/bin/python benchmarks/quality.py meld --smoke        (tiny LLM, a few samples: checks the script)

meld: the official MELD train and dev CSVs in ``../shared/data/meld`` (no test CSV there). Models train on
MELD train minus held-out train dialogues, select their checkpoint on those held-out dialogues (never on
dev), and are scored once on dev (1,109 utterances). The held-out dialogues: as many whole train dialogues as
dev has (114), the seeded draw whose label distribution is closest to dev's (``meld_heldout``; its label
distribution against dev's is in ``results/heldout_meld.md``, written by ``benchmarks/baseline_rates.py``). Text + dialogue context only (no audio/video here):
the LLM models read the utterance in the prompt and EGMF's fusion reads the LLM's input embeddings of it
(``text_source=llm``); late_fusion and mult have no LLM and read a MiniLM sentence vector
(``text_source=sentence``). A budget of ``--steps`` optimiser steps at batch 8 for every model.

ravdess: the custom-format dataset ``benchmarks/ravdess_anchors.py --out DIR`` writes (Whisper tiny.en
frames as audio, MiniLM token vectors of the statement as text). Speaker-independent: train actors 01-05,
select on actor 06, test on actors 07-08 (the anchors' test actors). The text carries no emotion.

The datasets are rewritten as custom-format folders under ``--work`` (outside the repository; features are
symlinked, never copied into the project). Finished runs are reused, so an interrupted sweep continues.
Writes ``benchmarks/results/quality_<dataset>.md``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import SHARED, Section, erc_rows, llm_budget, outside_repo, reuse_note, train_models  # noqa: E402

DESCRIPTIONS = {
    "egmf": "EGMF: experts + hierarchical gates -> pseudo tokens -> SmolLM2 + LoRA",
    "egmf_mean_gate": "EGMF with both gating levels replaced by a uniform mean",
    "llm_text": "SmolLM2 + LoRA on the prompt alone (no fusion)",
    "late_fusion": "late-fusion MLP (no LLM)",
    "mult": "MulT-style cross-modal transformer (no LLM)",
}


MELD_SETUP = ("MELD train minus held-out train dialogues (checkpoint selection: as many whole dialogues as dev has, "
              "label distribution drawn close to dev's, see `heldout_meld.md`), scored once on MELD dev; "
              "text + up to 3 context turns; no audio/video features")


def meld_heldout(train, dev, n_dialogues: int | None = None, seed: int = 0):
    """The held-out selection dialogues of MELD train: ``egmf.data.heldout.draw_dialogues`` over whole train
    dialogues, as many as dev has (``n_dialogues`` None), label distribution closest to dev's (only dev's label
    counts are read, never a prediction on dev). Returns the ``DrawnDialogues``."""
    from egmf.data.heldout import draw_dialogues, label_distribution

    by_dialogue: dict[str, list[str]] = {}
    for s in train:
        by_dialogue.setdefault(dialogue_of(s), []).append(str(s.label))
    n = n_dialogues or len({dialogue_of(s) for s in dev})
    return draw_dialogues(by_dialogue, n, label_distribution([str(s.label) for s in dev]), seed=seed)


def dialogue_of(sample) -> str:
    """``train/dia12_utt3`` -> ``dia12``: the dialogue of a MELD loader sample."""
    return sample.id.split("/")[1].split("_")[0]


def write_meld(src: Path, out: Path, n_dialogues: int | None = None, seed: int = 0, label: str = "emotion",
               name: str = "meld") -> Path:
    """MELD train/dev as a custom-format folder: train minus the held-out dialogues (:func:`meld_heldout`),
    valid = those, test = dev; ``label="sentiment"`` writes the three sentiments instead of the seven emotions."""
    from egmf.data.registry import load_dataset
    from egmf.data.schema import MELD_EMOTIONS, MELD_SENTIMENTS

    data = load_dataset("meld", src, splits=("train", "valid"), features=None, label=label)
    train, dev = data.splits["train"], data.splits["valid"]
    held = set(meld_heldout(train, dev, n_dialogues, seed).dialogues)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "data.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label", "split", "speaker", "dialogue"])
        for s in train + dev:
            split_name, utt = s.id.split("/")
            dia = utt.split("_")[0]
            split = "test" if split_name == "valid" else ("valid" if dia in held else "train")
            w.writerow([f"{split_name}_{utt}", s.text, s.label, split, s.speaker or "", f"{split_name}_{dia}"])
    words = MELD_SENTIMENTS if label == "sentiment" else MELD_EMOTIONS
    spec = {"name": name, "task": "erc", "lang": "en", "labels": list(words), "metric_family": "erc"}
    (out / "dataset.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return out


def write_ravdess(src: Path, out: Path, valid_actor: str = "actor06") -> Path:
    """The extracted RAVDESS custom dataset with ``valid_actor`` moved from train to valid."""
    if not (src / "data.csv").is_file():
        sys.exit(f"{src}: no data.csv; run benchmarks/ravdess_anchors.py --out {src} first")
    out.mkdir(parents=True, exist_ok=True)
    with (src / "data.csv").open(encoding="utf-8") as f, (out / "data.csv").open("w", encoding="utf-8", newline="") as g:
        rows = list(csv.DictReader(f))
        w = csv.DictWriter(g, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            if r["split"] == "train" and r.get("speaker") == valid_actor:
                r["split"] = "valid"
            w.writerow(r)
    (out / "dataset.yaml").write_text((src / "dataset.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    link = out / "features"
    if not link.exists():
        link.symlink_to((src / "features").resolve(), target_is_directory=True)
    return out


def base_config(path: Path, steps: int, backend: str, text_source: str, smoke: bool) -> dict:
    cfg = {
        "name": "x", "output_dir": "x",
        "data": {"datasets": [{"name": "custom", "path": str(path)}]},
        "model": {
            "name": "egmf", "text_source": text_source,
            "llm": {"backend": backend, "autocast": "bf16" if backend != "tiny" else "none"},
            "fusion": {"d_model": 128, "num_pseudo_tokens": 4},
            "lora": {"r": 8, "alpha": 16},
            "prompt": {"include_context": True, "max_context_turns": 3, "max_prompt_tokens": 256},
            "baseline": {"hidden": 128, "layers": 2},
        },
        "train": {"epochs": 100, "max_steps": steps, "batch_size": 8, "eval_every": max(1, steps // 3),
                  "patience": 0, "save_every": 50, "log_every": 10},  # rates: each model's own defaults
        "eval": {"batch_size": 16, "plots": False},
    }
    if smoke:
        cfg["data"]["limit"] = {"train": 16, "valid": 8, "test": 8}
        cfg["model"]["fusion"] = {"d_model": 16, "n_heads": 2, "num_pseudo_tokens": 2}
        cfg["model"]["prompt"]["max_prompt_tokens"] = 768  # the tiny LLM's tokenizer is byte-level
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", choices=["meld", "ravdess"])
    ap.add_argument("--steps", type=int, default=300, help="optimiser steps per model (batch 8)")
    ap.add_argument("--models", default="egmf,llm_text,egmf_mean_gate,late_fusion,mult")
    ap.add_argument("--work", type=Path, default=Path("/tmp/egmf_bench"), help="data + run folders (outside the repo)")
    ap.add_argument("--meld", type=Path, default=SHARED / "meld")
    ap.add_argument("--ravdess", type=Path, default=Path("/tmp/ravdess_custom"), help="ravdess_anchors.py --out DIR")
    ap.add_argument("--seeds", default="1111")
    ap.add_argument("--smoke", action="store_true", help="tiny LLM, 16 train samples, 2 steps: checks the script")
    args = ap.parse_args()
    outside_repo(args.work)
    backend, steps = llm_budget(args.smoke, args.steps)
    tag = f"{args.dataset}{'_smoke' if args.smoke else ''}"
    section = Section(f"quality_{tag}", f"Quality on real data: {args.dataset.upper()}")
    if args.dataset == "meld":
        path = write_meld(args.meld, args.work / "data" / "meld")
        text_source = "llm"
        note = MELD_SETUP
    else:
        path = write_ravdess(args.ravdess, args.work / "data" / "ravdess")
        text_source = "dataset"
        note = ("RAVDESS speech, train actors 01-05, select on actor 06, test actors 07-08 (speaker-independent); "
                "audio = Whisper tiny.en encoder frames, text = MiniLM token vectors of the statement")
    base = base_config(path, steps, backend, text_source, args.smoke)
    wanted = [m for m in args.models.split(",") if m]
    overrides = {m: [f"model.name={m}"] for m in wanted}
    for m in ("late_fusion", "mult"):
        if m in overrides and args.dataset == "meld":
            overrides[m].append("model.text_source=sentence")  # no LLM: a MiniLM sentence vector is their text
    seeds = [int(s) for s in args.seeds.split(",")]
    results = train_models(base, overrides, args.work / "runs" / tag, seeds)
    dataset = next(iter(results.values())).result.datasets[0]
    section.add(*erc_rows(results, dataset, DESCRIPTIONS, majority=True))
    section.add("", f"Run folders (configs, checkpoints, predictions): `{args.work / 'runs' / tag}`.")
    section.write([
        f"data: {note}",
        f"budget: {steps} optimiser steps at batch 8 per model (``train.max_steps``), checkpoint chosen on valid "
        f"every {max(1, steps // 3)} steps; seeds {args.seeds}; LLM {backend}"
        f"{' (bf16 autocast)' if backend != 'tiny' else ''}, LoRA r=8, K=4",
        "metrics: scikit-learn weighted F1 / macro F1 / accuracy (fractions) on the test split named above",
        reuse_note(results),
    ])


if __name__ == "__main__":
    main()
