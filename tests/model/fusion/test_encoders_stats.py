"""The utterance-level tokens of the modality encoders: the statistics token and the pooled-set tokens.

Run: .venv/bin/python -m pytest tests/model/fusion/test_encoders_stats.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from egmf.data.collate import collate
from egmf.data.schema import MODALITIES, Sample
from egmf.errors import ConfigError
from egmf.model.fusion import ExpertFusion, FusionConfig
from egmf.model.fusion.encoders import ModalityEncoders, check_feature_dims, pooled_modality

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny tensors, one thread

DIMS = {
    "alpha": {"text": 3, "audio": 4, "vision": 0, "pooled:egemaps": 5, "pooled:sentence": 6},
    "beta": {"text": 0, "audio": 2, "vision": 3},
}


def sample(i, source="alpha", frames=3, audio=True, pooled=("egemaps", "sentence")) -> Sample:
    rng = np.random.default_rng(i)
    d = DIMS[source]
    arr = {m: rng.standard_normal((frames + (mi % 2), d[m])).astype(np.float32) if d[m] else None
           for mi, m in enumerate(MODALITIES)}
    if not audio:
        arr["audio"] = None
    vecs = {n: rng.standard_normal((1, d[f"pooled:{n}"])).astype(np.float32) for n in pooled if f"pooled:{n}" in d}
    return Sample(f"{source}-{i}", "hi", 0.0, source, "msa", "en", text_feats=arr["text"], audio=arr["audio"],
                  vision=arr["vision"], pooled=vecs)


def encoders(stats_token=True, max_frames=None, missing="mask") -> ModalityEncoders:
    torch.manual_seed(0)
    return ModalityEncoders(DIMS, 8, dropout=0.0, max_frames=max_frames, missing_modality=missing,
                            stats_token=stats_token).eval()


def encode(enc, samples):
    b = collate(samples)
    return enc(b.features, b.masks, [s.dataset for s in samples])


def test_feature_dims_name_pooled_sets_and_refuse_unknown_keys():
    assert check_feature_dims({"a": {"audio": 2, "pooled:egemaps": 88}}) == {
        "a": {"text": 0, "audio": 2, "vision": 0, "pooled:egemaps": 88}}
    for bad in ("pooled:", "audio2"):
        with pytest.raises(ConfigError, match="unknown modality"):
            check_feature_dims({"a": {"audio": 2, bad: 3}})
    assert pooled_modality("pooled:sentence") == "text" and pooled_modality("pooled:egemaps") == "audio"


def test_utterance_slots_come_first_and_are_fixed_by_feature_dims():
    enc = encoders()
    # text: stats + pooled sentence; audio: stats + pooled egemaps; vision: stats (beta has vision) only
    assert enc.stats_slot == {"text": True, "audio": True, "vision": True}
    assert enc.pooled_slots == {"text": ["pooled:sentence"], "audio": ["pooled:egemaps"], "vision": []}
    tokens, masks, present = encode(enc, [sample(0, frames=3)])  # 3 text frames, 4 audio frames
    assert tokens["audio"].shape[1] == 2 + 4 and masks["audio"][0].tolist() == [True] * 6
    assert tokens["text"].shape[1] == 2 + 3
    # alpha has no vision: its stats slot and the one empty frame slot are masked and zero
    assert masks["vision"][0].tolist() == [False, False] and tokens["vision"].abs().sum() == 0
    assert present[0].tolist() == [True, True, False]
    off = encoders(stats_token=False)
    tokens, masks, _ = encode(off, [sample(0, frames=3)])
    assert tokens["audio"].shape[1] == 1 + 4 and not any(off.stats_slot.values()) and len(off.stats_proj) == 0


def test_the_statistics_token_reads_mean_and_std_of_the_standardised_real_frames():
    enc = encoders(max_frames=2)  # pooling to 2 frames must not change the statistics the token sees
    mean, std = np.array([1.0, -1.0, 0.5, 2.0]), np.array([2.0, 1.0, 4.0, 0.5])
    enc.standardize.fit({"alpha": {"audio": (mean, std)}})
    seen = []
    enc.stats_proj["alpha__audio"].register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach().clone()))
    s = sample(3, frames=5)
    encode(enc, [s, sample(4, frames=2)])  # padding from the longer sample must not enter the statistics
    z = (s.audio - mean) / std
    expected = np.concatenate([z.mean(0), z.std(0)])
    np.testing.assert_allclose(seen[0][0].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_pooled_sets_are_standardised_tokens_and_make_a_modality_present():
    enc = encoders()
    enc.standardize.fit({"alpha": {"pooled:egemaps": (np.full(5, 10.0), np.full(5, 2.0))}})
    seen = []
    enc.proj["alpha__pooled_egemaps"].register_forward_hook(lambda mod, inp, out: seen.append(inp[0].clone()))
    only_pooled = sample(1, audio=False)  # no audio frames, but the eGeMAPS functionals
    tokens, masks, present = encode(enc, [only_pooled])
    np.testing.assert_allclose(seen[0][0].numpy(), (only_pooled.pooled["egemaps"][0] - 10.0) / 2.0, rtol=1e-6)
    assert masks["audio"][0].tolist() == [False, True, False]  # stats (no frames) | egemaps | no frames
    assert present[0].tolist() == [True, True, False]
    # A sample without the set gets the same slots, masked and zero.
    tokens, masks, _ = encode(enc, [sample(2, pooled=("sentence",)), only_pooled])
    assert masks["audio"][0, 1].item() is False and tokens["audio"][0, 1].abs().sum() == 0
    # beta was built without pooled sets: a set in its samples is not read (slot masked)
    beta = sample(5, "beta")
    beta.pooled = {"egemaps": np.ones((1, 5), np.float32)}
    _, masks, _ = encode(enc, [beta])
    assert masks["audio"][0, 1].item() is False


def test_a_pooled_set_narrower_than_declared_is_a_clear_error():
    enc = encoders()
    s = sample(0)
    s.pooled["egemaps"] = np.ones((1, 3), np.float32)
    with pytest.raises(ConfigError, match="declares pooled:egemaps dim 5, but the batch's pooled:egemaps features are only 3"):
        encode(enc, [s])


@pytest.mark.parametrize("missing", ["mask", "learned"])
def test_tokens_do_not_depend_on_the_batch(missing):
    """Alone or next to longer samples, samples of another source and samples without pooled sets."""
    torch.manual_seed(0)
    fusion = ExpertFusion(FusionConfig(d_model=8, n_heads=2, gate_hidden=4, dropout=0.0, global_layers=1,
                                       missing_modality=missing), DIMS, 12).eval()
    fusion.encoders.standardize.fit({"alpha": {"audio": (np.ones(4), np.full(4, 3.0))}})
    samples = [sample(0, frames=2), sample(1, "beta", frames=7), sample(2, frames=9, pooled=()),
               sample(3, audio=False)]
    with torch.no_grad():
        batched = fusion.forward_batch(collate(samples)).tokens
        for i, s in enumerate(samples):
            alone = fusion.forward_batch(collate([s])).tokens
            torch.testing.assert_close(batched[i: i + 1], alone, atol=1e-5, rtol=0)


def test_the_config_switch_reaches_the_encoders():
    on = ExpertFusion(FusionConfig(d_model=8, n_heads=2), DIMS, 12)
    off = ExpertFusion(FusionConfig(d_model=8, n_heads=2, stats_token=False), DIMS, 12)
    assert FusionConfig().stats_token is True
    assert on.encoders.stats_slot["audio"] and not off.encoders.stats_slot["audio"]
    assert "encoders.stats_type" in dict(on.named_parameters()) and off.encoders.stats_type is None


def test_gradients_reach_the_utterance_level_projections():
    torch.manual_seed(0)
    fusion = ExpertFusion(FusionConfig(d_model=8, n_heads=2, gate_hidden=4, dropout=0.0, global_layers=1), DIMS, 12)
    out = fusion.forward_batch(collate([sample(0), sample(1, "beta")]))
    (out.tokens * torch.randn_like(out.tokens)).sum().backward()
    enc = fusion.encoders
    for mod in (enc.stats_proj["alpha__audio"], enc.stats_proj["beta__vision"], enc.proj["alpha__pooled_egemaps"],
                enc.proj["alpha__pooled_sentence"]):
        assert mod.weight.grad is not None and mod.weight.grad.abs().sum() > 0
    assert enc.stats_type.grad.abs().sum() > 0 and enc.pooled_type.grad.abs().sum() > 0
