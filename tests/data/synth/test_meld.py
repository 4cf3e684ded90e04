"""The synthetic MELD writer (egmf.data.synth.meld): dialogues with several speakers, dims as asked."""

from __future__ import annotations

from collections import Counter

from egmf.data.meld import load_meld
from egmf.data.synth import write_synthetic


def test_meld_writer_dialogues_and_dims(tmp_path):
    data = load_meld(write_synthetic("meld", tmp_path / "m", 30, seed=1, dims={"audio": 300}))
    assert data.feature_dims() == {"text": 48, "audio": 300, "vision": 24}
    dialogues = Counter(s.id.split("_utt")[0] for s in data.splits["train"])
    assert len(dialogues) >= 4 and max(dialogues.values()) >= 3
    speakers = {s.id.split("_utt")[0]: set() for s in data.splits["train"]}
    for s in data.splits["train"]:
        speakers[s.id.split("_utt")[0]].add(s.speaker)
    assert max(len(v) for v in speakers.values()) >= 2
