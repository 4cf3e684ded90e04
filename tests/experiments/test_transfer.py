"""``egmf.experiments.transfer``: the answer mappings (golden values), the feature policy, and transfer end to end."""

from __future__ import annotations

import csv
import json

import pytest

from egmf.config import DatasetEntry, config_from_dict
from egmf.data.schema import CHERMA_EMOTIONS, MELD_EMOTIONS, MELD_SENTIMENTS, DatasetInfo, Sample
from egmf.errors import ConfigError
from egmf.experiments.transfer import (adapt_samples, answer_mapper, evaluate_checkpoint_on, label_map, rescale,
                                       run_transfer, scorable_labels, use_target_statistics)

MELD = DatasetInfo("meld", "erc", "en", labels=MELD_EMOTIONS, metric_family="erc")
CHERMA = DatasetInfo("cherma", "erc", "zh", labels=CHERMA_EMOTIONS, metric_family="erc")
MOSEI = DatasetInfo("mosei", "msa", "en", score_range=(-3.0, 3.0), metric_family="mosi")
SIMSV2 = DatasetInfo("simsv2", "msa", "zh", score_range=(-1.0, 1.0), metric_family="sims")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny models, one thread


# ------------------------------------------------------------------------------------------ mappings
GOLDEN = {"joy": "高兴", "sadness": "悲伤", "anger": "愤怒", "surprise": "惊奇", "fear": "恐惧", "disgust": "厌恶",
          "neutral": "平静"}


def test_meld_to_cherma_labels():
    assert label_map(MELD, CHERMA) == GOLDEN


def test_cherma_to_meld_labels_are_the_inverse():
    assert label_map(CHERMA, MELD) == {zh: en for en, zh in GOLDEN.items()}
    to_meld = answer_mapper(CHERMA, MELD)
    assert [to_meld(w) for w in ("高兴", "平静", "惊奇")] == ["joy", "neutral", "surprise"]


def test_same_label_words_map_to_themselves():
    other = DatasetInfo("custom", "erc", "zh", labels=MELD_EMOTIONS, metric_family="erc")
    assert label_map(MELD, other) == {w: w for w in MELD_EMOTIONS}


def test_meld_sentiment_labels_have_no_mapping_to_emotions():
    sentiments = DatasetInfo("meld", "erc", "en", labels=MELD_SENTIMENTS, metric_family="erc")
    with pytest.raises(ConfigError, match=r"no label mapping from meld \(neutral, positive, negative\) to cherma"):
        label_map(sentiments, CHERMA)


SENTIMENT = DatasetInfo("meld", "erc", "en", labels=MELD_SENTIMENTS, metric_family="erc")
BINARY = DatasetInfo("reviews", "erc", "zh", labels=("positive", "negative"), metric_family="erc")


def test_three_way_sentiment_maps_onto_binary_with_neutral_unmapped():
    assert label_map(SENTIMENT, BINARY) == {"neutral": None, "positive": "positive", "negative": "negative"}
    to_binary = answer_mapper(SENTIMENT, BINARY)
    # neutral has no binary word: the answer stays 'neutral' and is scored as an error
    assert [to_binary(w) for w in ("positive", "neutral", "negative")] == ["positive", "neutral", "negative"]
    assert scorable_labels(SENTIMENT, BINARY) == ("positive", "negative")


def test_binary_sentiment_reaches_only_the_shared_labels_of_three_way():
    assert label_map(BINARY, SENTIMENT) == {"positive": "positive", "negative": "negative"}
    assert scorable_labels(BINARY, SENTIMENT) == ("positive", "negative")  # MELD's neutral samples are left out
    assert scorable_labels(MOSEI, SIMSV2) is None  # every score is scored


def test_label_sets_sharing_one_word_are_refused():
    other = DatasetInfo("x", "erc", "en", labels=("positive", "mixed"), metric_family="erc")
    with pytest.raises(ConfigError, match="label sets of which one contains the other"):
        label_map(SENTIMENT, other)


@pytest.mark.parametrize("score, expected", [(3.0, 1.0), (-3.0, -1.0), (0.0, 0.0), (-1.5, -0.5), (1.2, 0.4), (4.0, 1.0)])
def test_mosei_scores_rescale_to_sims_range(score, expected):
    assert answer_mapper(MOSEI, SIMSV2)(score) == pytest.approx(expected)


@pytest.mark.parametrize("score, expected", [(1.0, 3.0), (-0.2, -0.6), (0.5, 1.5), (-1.0, -3.0)])
def test_sims_scores_rescale_to_mosei_range(score, expected):
    assert rescale(score, SIMSV2.score_range, MOSEI.score_range) == pytest.approx(expected)


def test_datasets_of_different_kinds_are_refused():
    with pytest.raises(ConfigError, match="meld is ERC and simsv2 is MSA; transfer needs two datasets of the same kind"):
        answer_mapper(MELD, SIMSV2)


# ------------------------------------------------------------------------------------- feature policy
def _sample():
    import numpy as np

    return Sample("c1", "我很高兴", "高兴", "cherma", "erc", "zh", text_feats=np.ones((3, 8), np.float32),
                  audio=np.ones((4, 6), np.float32), vision=np.ones((2, 7), np.float32))


def test_modalities_with_the_sources_dims_are_fed_and_others_dropped():
    source_dims, target_dims = {"text": 8, "audio": 6, "vision": 5}, {"text": 8, "audio": 6, "vision": 7}
    (s,), status = adapt_samples([_sample()], MELD, source_dims, target_dims, "dataset")
    assert (s.dataset, s.lang, s.label) == ("meld", "en", None)  # the source's prompt; the truth stays out
    assert s.text_feats is not None and s.audio is not None and s.vision is None
    assert status == {"text": "fed (8-d)", "audio": "fed (6-d)", "vision": "dropped (5-d vs 7-d)"}


def test_llm_text_source_feeds_the_utterance_through_the_llm():
    (s,), status = adapt_samples([_sample()], MELD, {"text": 0, "audio": 0, "vision": 5}, {"text": 8, "audio": 6,
                                 "vision": 7}, "llm")
    assert status["text"] == "fed (LLM embeddings)" and status["audio"] == "not used by the model"
    assert s.text_feats is None and s.audio is None and s.vision is None and s.text == "我很高兴"


def test_pooled_sets_are_fed_only_where_their_dims_match():
    import dataclasses

    import numpy as np

    sample = dataclasses.replace(_sample(), pooled={"egemaps": np.ones((1, 88), np.float32),
                                                    "mfcc": np.ones((1, 40), np.float32)})
    source = {"text": 8, "audio": 6, "vision": 0, "pooled:egemaps": 88, "pooled:mfcc": 80}
    target = {"text": 8, "audio": 6, "vision": 7, "pooled:egemaps": 88, "pooled:mfcc": 40}
    (s,), status = adapt_samples([sample], MELD, source, target, "dataset")
    assert set(s.pooled) == {"egemaps"}  # the 40-d mfcc set would not fit the model's 80-d projection
    assert status["pooled:egemaps"] == "fed (88-d)" and status["pooled:mfcc"] == "dropped (80-d vs 40-d)"


def test_naming_a_modality_whose_dims_differ_is_refused():
    with pytest.raises(ConfigError, match=r"--modalities vision: the model reads 5-d vision features \(meld\) and the "
                                          r"target has 7-d vision features; feature dims must match"):
        adapt_samples([_sample()], MELD, {"text": 8, "audio": 6, "vision": 5}, {"text": 8, "audio": 6, "vision": 7},
                      "dataset", ["audio", "vision"])
    (s,), status = adapt_samples([_sample()], MELD, {"text": 8, "audio": 6, "vision": 5},
                                 {"text": 8, "audio": 6, "vision": 7}, "dataset", ["audio"])
    assert s.audio is not None and s.text_feats is None and status["text"] == "dropped"


# --------------------------------------------------------------------------------------- end to end
def _config(dataset: str, path, out, model: dict) -> dict:
    return {
        "name": "xl", "output_dir": str(out),
        "data": {"datasets": [{"name": dataset, "path": str(path)}], "limit": {"train": 8, "valid": 4, "test": 5}},
        "model": model,
        "train": {"epochs": 1, "max_steps": 1, "batch_size": 4, "mixed_precision": "no", "lr_fusion": 1e-2},
        "eval": {"batch_size": 8, "plots": False},
    }


TINY_EGMF = {
    "name": "egmf", "text_source": "llm", "llm": {"backend": "tiny", "tiny_hidden_size": 32},
    "fusion": {"d_model": 16, "n_heads": 2, "num_pseudo_tokens": 2, "gate_hidden": 8, "global_layers": 1},
    "lora": {"r": 4}, "prompt": {"template": "minimal", "use_chat_template": False, "max_context_turns": 1},
}


@pytest.fixture(scope="module")
def erc_transfer(tmp_path_factory):
    """MELD -> CHERMA and back, one step each, EGMF on the tiny LLM; CHERMA audio has MELD's dim, vision not."""
    from egmf.data.synth import write_synthetic

    root = tmp_path_factory.mktemp("xl")
    meld = write_synthetic("meld", root / "meld", size="tiny", seed=6, dims={"text": 8, "audio": 6, "vision": 5})
    cherma = write_synthetic("cherma", root / "cherma", size="tiny", seed=7,
                             shapes={"text": (4, 8), "audio": (5, 6), "vision": (3, 7)})
    cfg = config_from_dict(_config("meld", meld, root / "runs", TINY_EGMF))
    rows, out = run_transfer(cfg, DatasetEntry("cherma", str(cherma)), reverse=True, log=lambda _: None)
    return rows, out


def test_transfer_table_has_both_directions_beside_the_target_language_model(erc_transfer, md_cells):
    rows, out = erc_transfer
    assert [(r["direction"], r["kind"]) for r in rows] == [
        ("meld -> cherma", "cross-lingual"), ("cherma -> cherma", "in-language"),
        ("cherma -> meld", "cross-lingual"), ("meld -> meld", "in-language"),
    ]
    assert rows[0]["modalities"] == "text (LLM embeddings), audio (6-d)"  # vision 5-d vs 7-d: dropped
    assert rows[0]["n_test"] == rows[1]["n_test"] == 5 and rows[0]["split"] == "test" and rows[0]["left_out"] == "-"
    table = md_cells((out / "transfer.md").read_text(encoding="utf-8"))
    assert table[0] == ["direction", "kind", "modalities fed", "input statistics", "label prior", "split", "n",
                        "left out", "Acc", "w-F1", "macro-F1", "outside labels"]
    assert table[2][:8] == ["meld -> cherma", "cross-lingual", "text (LLM embeddings), audio (6-d)", "as trained",
                            "as trained", "test", "5", "-"]
    assert table[2][8:] == [f"{rows[0]['summary'][k]['mean'] * 100:.2f} ± 0.00" for k in ("accuracy", "weighted_f1",
                                                                                       "macro_f1", "outside_labels")]
    assert table[2][11] == "0.00 ± 0.00"  # a bijection: every answer is a CHERMA word
    table = list(csv.DictReader((out / "transfer.csv").open(encoding="utf-8")))
    assert [r["direction"] for r in table] == [r["direction"] for r in rows]


def test_the_in_language_row_is_the_target_models_own_test_score(erc_transfer):
    rows, out = erc_transfer
    own = json.loads((out / "transfer_train_cherma" / "seed_1111" / "metrics.json").read_text(encoding="utf-8"))
    assert rows[1]["summary"]["accuracy"]["mean"] == pytest.approx(own["test"]["cherma"]["accuracy"])


def test_cross_lingual_answers_are_mapped_into_the_targets_labels(erc_transfer):
    from egmf.evaluation.metrics import compute_metrics

    rows, out = erc_transfer
    folder = out / "transfer_meld_to_cherma" / "seed_1111"
    preds = [json.loads(x) for x in (folder / "predictions_test.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(preds) == 5 and all(p["prediction"] in CHERMA_EMOTIONS and p["dataset"] == "cherma" for p in preds)
    back = [json.loads(x) for x in (out / "transfer_cherma_to_meld" / "seed_1111" / "predictions_test.jsonl")
            .read_text(encoding="utf-8").splitlines()]
    assert all(p["prediction"] in MELD_EMOTIONS for p in back)
    # The table's numbers are the target metrics of these very predictions.
    saved = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    from egmf.data.registry import load_dataset

    truth = {s.id: s.label for s in load_dataset("cherma", out.parent.parent / "cherma").splits["test"]}
    again = compute_metrics(CHERMA, [p["prediction"] for p in preds], [truth[p["id"]] for p in preds])
    assert saved["test"]["weighted_f1"] == pytest.approx(again["weighted_f1"])
    assert rows[0]["summary"]["weighted_f1"]["mean"] == pytest.approx(again["weighted_f1"])


def test_msa_transfer_rescales_the_models_own_scores(tmp_path):
    """MOSEI -> SIMS v2 with the late-fusion model (same feature dims): each answer is the source answer / 3."""
    from egmf.data.synth import write_synthetic
    from egmf.evaluation.evaluate import predict_samples
    from egmf.training import checkpoint as ckpt

    small = {"dims": {"text": 8, "audio": 5, "vision": 6}, "seq_lens": {"text": 6, "audio": 8, "vision": 8}}
    mosei = write_synthetic("mmsa", tmp_path / "mosei", size="tiny", seed=8, flavour="mosei", **small)
    sims = write_synthetic("mmsa", tmp_path / "simsv2", size="tiny", seed=9, flavour="simsv2", **small)
    model = {"name": "late_fusion", "baseline": {"hidden": 8, "layers": 1, "dropout": 0.0}}
    cfg = config_from_dict(_config("mosei", mosei, tmp_path / "runs", model))
    rows, out = run_transfer(cfg, DatasetEntry("simsv2", str(sims)), log=lambda _: None)
    assert [r["direction"] for r in rows] == ["mosei -> simsv2", "mosei -> mosei"]
    assert rows[0]["modalities"] == "text (8-d), audio (5-d), vision (6-d)"
    assert set(rows[0]["summary"]) >= {"acc2", "f1", "mae", "corr"}  # SIMS metrics on the target
    mapped = [json.loads(x) for x in (out / "transfer_mosei_to_simsv2" / "seed_1111" / "predictions_test.jsonl")
              .read_text(encoding="utf-8").splitlines()]
    net, _, _ = ckpt.load_model(out / "transfer_train_mosei" / "seed_1111" / "checkpoints" / "best")
    from egmf.config import DataConfig
    from egmf.training.data import load_training_data

    test = load_training_data(DataConfig([DatasetEntry("simsv2", str(sims))], limit={"test": 5})).split("test")
    raw = predict_samples(net, [Sample(**{**s.__dict__, "dataset": "mosei", "lang": "en"}) for s in test], 8)
    assert [p["id"] for p in mapped] == [s.id for s in test]
    assert [p["prediction"] for p in mapped] == pytest.approx([min(max(p.prediction / 3, -1), 1) for p in raw])


# ------------------------------------------------------------------------------- input statistics
def test_target_statistics_replace_the_fed_keys_and_keep_the_rest():
    import numpy as np
    from torch import nn

    from egmf.model.standardize import FeatureStandardizer

    model = nn.Sequential(FeatureStandardizer({"meld": {"text": 2, "audio": 3}}))
    model[0].fit({"meld": {"text": (np.array([1.0, 2.0]), np.array([3.0, 4.0])),
                           "audio": (np.full(3, 5.0), np.full(3, 6.0))}})
    target = {"text": (np.array([-1.0, 0.5]), np.array([2.0, 0.25])), "audio": (np.zeros(3), np.ones(3))}
    status = {"text": "fed (2-d)", "audio": "dropped (3-d vs 4-d)", "vision": "not used by the model"}
    assert use_target_statistics(model, "meld", target, status) == ["text"]
    stats = model[0].statistics()["meld"]
    assert stats["text"][0] == pytest.approx([-1.0, 0.5]) and stats["text"][1] == pytest.approx([2.0, 0.25])
    assert stats["audio"][0] == pytest.approx([5.0] * 3) and stats["audio"][1] == pytest.approx([6.0] * 3)
    with pytest.raises(ConfigError, match="needs the target's train split features of audio"):
        use_target_statistics(model, "meld", {"text": target["text"]}, {"text": "fed (2-d)", "audio": "fed (3-d)"})
    with pytest.raises(ConfigError, match="the Linear model has no input standardiser"):
        use_target_statistics(nn.Linear(2, 2), "meld", target, {"text": "fed (2-d)"})


def test_target_statistics_make_the_transfer_blind_to_an_affine_change_of_the_targets_features(tmp_path):
    """Scaling the target's audio by 1,000 and shifting it (every split) leaves the answer probabilities unchanged
    when the target's own statistics standardise it; the source's statistics (the default) are not blind to it.
    Late fusion: its answers read the features directly (EGMF starts as its text-only LLM)."""
    import dataclasses

    import numpy as np

    from egmf.config import DataConfig
    from egmf.data.synth import write_synthetic
    from egmf.training.data import feature_statistics, load_training_data

    meld = write_synthetic("meld", tmp_path / "meld", size="tiny", seed=6, dims={"text": 8, "audio": 6, "vision": 5})
    cherma = write_synthetic("cherma", tmp_path / "cherma", size="tiny", seed=7,
                             shapes={"text": (4, 8), "audio": (5, 6), "vision": (3, 7)})
    model = {"name": "late_fusion", "baseline": {"hidden": 8, "layers": 1, "dropout": 0.0}}
    _, out = run_transfer(config_from_dict(_config("meld", meld, tmp_path / "runs", model)),
                          DatasetEntry("cherma", str(cherma)), log=lambda _: None)
    best = out / "transfer_train_meld" / "seed_1111" / "checkpoints" / "best"
    data = load_training_data(DataConfig([DatasetEntry("cherma", str(cherma))], limit={"train": 8, "test": 5}))
    scale, shift = np.array([1e3, 1.0, 2e3, 5.0, 1e3, 0.5], np.float32), np.arange(6, dtype=np.float32) * 7

    def changed(samples):
        return [dataclasses.replace(s, audio=s.audio * scale + shift) for s in samples]

    answers = {}
    for name, train, test in (("as given", data.split("train"), data.split("test")),
                              ("changed", changed(data.split("train")), changed(data.split("test")))):
        stats = feature_statistics(train)["cherma"]
        for choice, own in (("target", stats), ("source", None)):
            folder = tmp_path / f"{name}_{choice}"
            metrics, status = evaluate_checkpoint_on(best, CHERMA, test, data.feature_dims["cherma"], folder,
                                                     target_statistics=own)
            answers[name, choice] = [
                [p for _, p in sorted(json.loads(x)["probabilities"].items())]  # over the source's words
                for x in (folder / "predictions_test.jsonl").read_text(encoding="utf-8").splitlines()]
            assert status["audio"] == "fed (6-d)"
            assert json.loads((folder / "metrics.json").read_text(encoding="utf-8"))["input_statistics"] == choice
    assert np.allclose(answers["as given", "target"], answers["changed", "target"], atol=1e-5)
    # The default path reads the changed audio through the source's statistics, and its answers move: the check
    # above is not vacuous.
    assert not np.allclose(answers["as given", "source"], answers["changed", "source"], atol=1e-2)


def test_transfer_scores_each_input_statistics_choice_as_a_row_of_its_own(tmp_path, md_cells):
    from egmf.data.synth import write_synthetic

    meld = write_synthetic("meld", tmp_path / "meld", size="tiny", seed=6, dims={"text": 8, "audio": 6, "vision": 5})
    cherma = write_synthetic("cherma", tmp_path / "cherma", size="tiny", seed=7,
                             shapes={"text": (4, 8), "audio": (5, 6), "vision": (3, 7)})
    cfg = config_from_dict(_config("meld", meld, tmp_path / "runs", TINY_EGMF))
    with pytest.raises(ConfigError, match="input statistics: invalid value 'both'; valid choices: source, target"):
        run_transfer(cfg, DatasetEntry("cherma", str(cherma)), input_statistics=["both"])
    rows, out = run_transfer(cfg, DatasetEntry("cherma", str(cherma)), reverse=True, log=lambda _: None,
                             input_statistics=("source", "target"))
    assert [(r["direction"], r["kind"], r["input_statistics"]) for r in rows] == [
        ("meld -> cherma", "cross-lingual", "as trained"), ("meld -> cherma", "cross-lingual", "target's train split"),
        ("cherma -> cherma", "in-language", "as trained"),
        ("cherma -> meld", "cross-lingual", "as trained"), ("cherma -> meld", "cross-lingual", "target's train split"),
        ("meld -> meld", "in-language", "as trained"),
    ]
    saved = json.loads((out / "transfer_meld_to_cherma_target_statistics" / "seed_1111" / "metrics.json")
                       .read_text(encoding="utf-8"))
    assert saved["input_statistics"] == "target"
    assert rows[1]["summary"]["accuracy"]["mean"] == pytest.approx(saved["test"]["accuracy"])
    table = md_cells((out / "transfer.md").read_text(encoding="utf-8"))
    assert [r[3] for r in table[2:]] == [r["input_statistics"] for r in rows]


def test_transfer_refuses_a_config_with_two_datasets_or_the_same_dataset(tmp_path):
    two = _config("meld", tmp_path, tmp_path, {"name": "late_fusion"})
    two["data"]["datasets"].append({"name": "mosei", "path": str(tmp_path)})
    with pytest.raises(ConfigError, match="the config must name one source dataset, it names 2"):
        run_transfer(config_from_dict(two), DatasetEntry("cherma", str(tmp_path)))
    one = config_from_dict(_config("meld", tmp_path, tmp_path, {"name": "late_fusion"}))
    with pytest.raises(ConfigError, match="source and target are both 'meld'"):
        run_transfer(one, DatasetEntry("meld", str(tmp_path)))


def _binary_reviews(folder, n: int = 24):
    """A Chinese positive/negative custom dataset: the cue word carries the label."""
    import yaml

    folder.mkdir(parents=True)
    words = {"positive": "很好，非常喜欢", "negative": "很差，非常失望"}
    lines = ["id,text,label,split"]
    for i in range(n):
        label = ("positive", "negative")[i % 2]
        split = "train" if i < n // 2 else ("valid" if i < 3 * n // 4 else "test")
        lines.append(f"r{i},第{i}本书{words[label]},{label},{split}")
    (folder / "data.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = {"name": "reviews", "task": "erc", "lang": "zh", "labels": ["positive", "negative"], "metric_family": "erc"}
    (folder / "dataset.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return folder


def _sentiment_source_and_reviews(tmp_path):
    """Generated MELD with its 3 sentiments as the source (EGMF on the tiny LLM) and the binary reviews."""
    from egmf.data.synth import write_synthetic

    meld = write_synthetic("meld", tmp_path / "meld", size="tiny", seed=6, dims={"text": 8, "audio": 6, "vision": 5})
    data = _config("meld", meld, tmp_path / "runs", TINY_EGMF)
    data["data"]["datasets"][0]["options"] = {"label": "sentiment"}
    data["data"]["limit"] = {"train": 8, "valid": 4, "test": 12}
    return meld, _binary_reviews(tmp_path / "reviews"), config_from_dict(data)


def test_three_way_sentiment_to_binary_and_back(tmp_path):
    """MELD sentiment (3-way) -> binary reviews and back: neutral answers are errors, neutral samples left out."""
    from collections import Counter

    from egmf.evaluation.metrics import erc_metrics

    meld, reviews, cfg = _sentiment_source_and_reviews(tmp_path)
    rows, out = run_transfer(cfg, DatasetEntry("custom", str(reviews)), reverse=True, log=lambda _: None)
    assert [(r["direction"], r["kind"]) for r in rows] == [
        ("meld -> reviews", "cross-lingual"), ("reviews -> reviews", "in-language"),
        ("reviews -> meld", "cross-lingual"), ("meld -> meld", "in-language"),
    ]
    # Forward: every review is scored; a 'neutral' answer is kept as said and scored as an error.
    preds = [json.loads(x) for x in (out / "transfer_meld_to_reviews" / "seed_1111" / "predictions_test.jsonl")
             .read_text(encoding="utf-8").splitlines()]
    assert rows[0]["n_test"] == len(preds) == 6 and rows[0]["left_out"] == "-"
    assert {p["prediction"] for p in preds} <= set(MELD_SENTIMENTS)
    truth = {f"r{i}": ("positive", "negative")[i % 2] for i in range(24)}
    answers, truths = [p["prediction"] for p in preds], [truth[p["id"]] for p in preds]
    expected = erc_metrics(answers, truths, ["positive", "negative", "neutral"])
    assert rows[0]["summary"]["accuracy"]["mean"] == pytest.approx(sum(a == t for a, t in zip(answers, truths)) / 6)
    assert rows[0]["summary"]["weighted_f1"]["mean"] == pytest.approx(expected["weighted_f1"])
    assert rows[0]["summary"]["outside_labels"]["mean"] == pytest.approx(answers.count("neutral") / 6)
    # Reverse: MELD's neutral test utterances are left out, the rest scored; the MELD model on the same ones.
    from egmf.config import DataConfig
    from egmf.training.data import load_training_data

    meld_test = load_training_data(DataConfig([DatasetEntry("meld", str(meld), {"label": "sentiment"})],
                                              limit={"test": 12})).split("test")
    counts = Counter(s.label for s in meld_test)
    assert counts["neutral"] > 0 and rows[2]["left_out"] == f"neutral {counts['neutral']}"
    assert rows[2]["n_test"] == rows[3]["n_test"] == len(meld_test) - counts["neutral"]
    back = [json.loads(x) for x in (out / "transfer_reviews_to_meld" / "seed_1111" / "predictions_test.jsonl")
            .read_text(encoding="utf-8").splitlines()]
    assert {p["prediction"] for p in back} <= {"positive", "negative"}
    assert rows[2]["summary"]["outside_labels"]["mean"] == 0.0  # the binary model never answers neutral


@pytest.mark.parametrize("target_statistics, encoded_splits", [(False, {"valid", "test"}),
                                                               (True, {"train", "valid", "test"})])
def test_the_targets_train_split_is_encoded_only_for_its_statistics(tmp_path, monkeypatch, target_statistics,
                                                                    encoded_splits):
    """Scoring a target reads its test split; its train split (14,000 reviews in the real benchmark) is loaded
    and sent through the sentence encoder only when input statistics 'target' need it."""
    import numpy as np

    from egmf.experiments import transfer
    from egmf.features import text

    reviews = _binary_reviews(tmp_path / "reviews")
    split_of = {f"第{i}本书": ("train" if i < 12 else "valid" if i < 18 else "test") for i in range(24)}
    encoded = []

    def fake(texts, batch_size=64, encoder="minilm"):
        encoded.extend(texts)
        return np.ones((len(texts), 384), np.float32)

    monkeypatch.setattr(text, "sentence_embeddings", fake)
    cfg = config_from_dict(_config("custom", reviews, tmp_path / "runs", {**TINY_EGMF, "text_source": "sentence"}))
    split = transfer._eval_split(cfg, DatasetEntry("custom", str(reviews)), "multilingual-e5-small",
                                 target_statistics)
    assert {split_of[t.split("很")[0]] for t in encoded} == encoded_splits
    assert split.split == "test" and len(split.samples) == 5  # data.limit.test of _config
    assert split.dims["text"] == 384 and all(s.text_feats.shape == (1, 384) for s in split.samples)
    assert bool(split.train_statistics) == target_statistics


def test_em_label_prior_rechooses_the_answers_under_the_estimated_prior(tmp_path, md_cells, monkeypatch):
    """label prior 'em': a row of its own per cross-lingual direction, whose answers are the as-trained row's
    probabilities re-weighted (Bayes' rule) from the source prior to the estimated target prior, both recorded.
    The two rows share one prediction of the target."""
    import numpy as np

    import egmf.evaluation.evaluate as evaluate
    import egmf.evaluation.report  # noqa: F401  (the trainer's and report's own binding stays uncounted)
    import egmf.training.trainer  # noqa: F401
    from egmf.evaluation.label_shift import reweight

    _, reviews, cfg = _sentiment_source_and_reviews(tmp_path)
    with pytest.raises(ConfigError, match="label prior: invalid value 'bayes'; valid choices: as_trained, em"):
        run_transfer(cfg, DatasetEntry("custom", str(reviews)), label_priors=["bayes"])
    calls, predict = [], evaluate.predict_samples
    monkeypatch.setattr(evaluate, "predict_samples", lambda model, samples, *a, **k: calls.append(
        {s.dataset for s in samples}) or predict(model, samples, *a, **k))
    rows, out = run_transfer(cfg, DatasetEntry("custom", str(reviews)), reverse=True, log=lambda _: None,
                             label_priors=("as_trained", "em"))
    # Per direction: the source's own valid inputs (its prior), the target once for both rows, the in-language row.
    assert len(calls) == 6
    assert [(r["direction"], r["kind"], r["label_prior"]) for r in rows] == [
        ("meld -> reviews", "cross-lingual", "as trained"), ("meld -> reviews", "cross-lingual", "EM on the scored inputs"),
        ("reviews -> reviews", "in-language", "as trained"),
        ("reviews -> meld", "cross-lingual", "as trained"), ("reviews -> meld", "cross-lingual", "EM on the scored inputs"),
        ("meld -> meld", "in-language", "as trained"),
    ]
    for src, tgt, labels in (("meld", "reviews", MELD_SENTIMENTS), ("reviews", "meld", ("positive", "negative"))):
        def read(folder):
            return [json.loads(x) for x in (out / folder / "seed_1111" / "predictions_test.jsonl")
                    .read_text(encoding="utf-8").splitlines()]

        plain, adapted = read(f"transfer_{src}_to_{tgt}"), read(f"transfer_{src}_to_{tgt}_em_prior")
        record = json.loads((out / f"transfer_{src}_to_{tgt}_em_prior" / "seed_1111" / "metrics.json")
                            .read_text(encoding="utf-8"))
        assert record["label_prior"] == "em"
        estimate = record["label_prior_estimate"]
        assert estimate["converged"] and estimate["n_source_inputs"] == 4  # the source's valid split (limit 4)
        src_prior, tgt_prior = (np.array([estimate[k][lab] for lab in labels]) for k in ("source", "target"))
        p = np.array([[q["probabilities"][lab] for lab in labels] for q in plain])
        expected = reweight(p, src_prior, tgt_prior)
        assert [q["prediction"] for q in adapted] == [labels[i] for i in expected.argmax(1)]
        assert np.allclose(expected.mean(0), tgt_prior, atol=1e-5)  # the EM fixed point
    table = md_cells((out / "transfer.md").read_text(encoding="utf-8"))
    assert [r[4] for r in table[2:]] == [r["label_prior"] for r in rows]


def test_em_label_prior_needs_a_label_model(tmp_path):
    from egmf.data.synth import write_synthetic

    small = {"dims": {"text": 8, "audio": 5, "vision": 6}, "seq_lens": {"text": 6, "audio": 8, "vision": 8}}
    mosei = write_synthetic("mmsa", tmp_path / "mosei", size="tiny", seed=8, flavour="mosei", **small)
    sims = write_synthetic("mmsa", tmp_path / "simsv2", size="tiny", seed=9, flavour="simsv2", **small)
    cfg = config_from_dict(_config("mosei", mosei, tmp_path / "runs", {"name": "late_fusion"}))
    with pytest.raises(ConfigError, match="label prior 'em' needs an emotion/sentiment-label source model; mosei is msa"):
        run_transfer(cfg, DatasetEntry("simsv2", str(sims)), log=lambda _: None, label_priors=("em",))
    assert not (tmp_path / "runs").exists()  # refused before any training


@pytest.mark.parametrize("speaker_normalization", [False, True])
def test_the_target_is_loaded_with_the_sources_data_settings(tmp_path, speaker_normalization):
    """A model trained on speaker-normalised inputs is scored on a target normalised the same way (and one trained
    without, on the target as given): the target split is loaded with the source config's data settings."""
    import dataclasses

    import numpy as np

    from egmf.data.registry import load_dataset
    from egmf.data.synth import write_synthetic
    from egmf.experiments import transfer
    from egmf.training.data import normalize_per_speaker

    cherma = write_synthetic("cherma", tmp_path / "cherma", size="tiny", seed=7,
                             shapes={"text": (4, 8), "audio": (5, 6), "vision": (3, 7)})
    cfg = config_from_dict(_config("meld", tmp_path / "meld", tmp_path / "runs", {"name": "late_fusion"}))
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, limit={},
                                                            speaker_normalization=speaker_normalization))
    split = transfer._eval_split(cfg, DatasetEntry("cherma", str(cherma)), "minilm", False)
    expected = load_dataset("cherma", cherma).splits["test"]
    if speaker_normalization:
        normalize_per_speaker(expected)
    assert [s.id for s in split.samples] == [s.id for s in expected]
    for got, want in zip(split.samples, expected):
        np.testing.assert_allclose(got.audio, want.audio, rtol=1e-6)
