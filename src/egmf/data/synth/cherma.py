"""Generated CHERMA in its distributed layout, with a learnable emotion signal in every modality.

Writes into ``out``::

    train.json  test.json     records {audio_file, video_file, text, txt_label, audio_label,
                              visual_label, video_label} (UTF-8, Chinese label words)
    text/{split}/{id}.npy  audio/{split}/{id}.npy  visual/{split}/{id}.mp4.npy   float32 [T, d]

The release's shapes are text 81x1024, audio 51x1024, visual 17x2048 (fixed length, padded): about
0.7 MB per utterance, too big for tests and the quickstart. So the default shapes are small
(text 12x32, audio 10x32, visual 6x24); ``real_dims=True`` writes the release's shapes and
``shapes={"audio": (51, 1024)}`` any others.

As in the real data, each unimodal label equals the multimodal ``video_label`` with probability
``agree`` (else another emotion), and each modality's features (and the transcript's cue word) carry
its own unimodal label: every modality is informative about ``video_label`` but none is perfect, so a
model that fuses them wins. There is no valid file: the loader carves valid from train. The generated
valid-sized share is added to train so that after the 10% carve-out train keeps about ``n_train``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from egmf.data.schema import CHERMA_EMOTIONS
from egmf.data.synth import common as C

DEFAULT_SHAPES = {"text": (12, 32), "audio": (10, 32), "vision": (6, 24)}
REAL_SHAPES = {"text": (81, 1024), "audio": (51, 1024), "vision": (17, 2048)}
LAYOUT = {"text": ("text", ".npy", "txt_label"), "audio": ("audio", ".npy", "audio_label"),
          "vision": ("visual", ".mp4.npy", "visual_label")}


def _other(rng: np.random.Generator, y: np.ndarray, agree: float, k: int) -> np.ndarray:
    """``y`` with each entry replaced, with probability ``1 - agree``, by a different class."""
    flip = rng.random(y.shape[0]) >= agree
    shift = rng.integers(1, k, size=y.shape[0])
    return np.where(flip, (y + shift) % k, y)


def write(
    out: Path,
    n_train: int,
    seed: int,
    real_dims: bool = False,
    shapes: dict[str, tuple[int, int]] | None = None,
    agree: float = 0.85,
    text_strength: float = 0.8,
    feature_strength: float = 2.0,
) -> Path:
    """Write generated CHERMA into ``out`` and return ``out`` (the folder :func:`load_cherma` reads)."""
    shapes = {**(REAL_SHAPES if real_dims else DEFAULT_SHAPES), **(shapes or {})}
    unknown = set(shapes) - set(DEFAULT_SHAPES)
    if unknown:
        raise ValueError(f"shapes: unknown modalities {sorted(unknown)}; expected text, audio, vision")
    rng = np.random.default_rng(seed)
    out = Path(out)
    sizes = C.split_sizes(n_train)
    k = len(CHERMA_EMOTIONS)
    for split, n in (("train", sizes["train"] + sizes["valid"]), ("test", sizes["test"])):
        y = C.draw_classes(rng, n, k, skew=0.4)
        uni = {m: _other(rng, y, agree, k) for m in LAYOUT}
        ids = [f"{split}_{i:05d}" for i in range(n)]
        records = []
        for i, rid in enumerate(ids):
            records.append({
                "audio_file": f"{rid}.wav",
                "video_file": f"{rid}.mp4",
                "text": C.cue_text(rng, CHERMA_EMOTIONS[uni["text"][i]], "zh", text_strength, labels=CHERMA_EMOTIONS),
                "txt_label": CHERMA_EMOTIONS[uni["text"][i]],
                "audio_label": CHERMA_EMOTIONS[uni["audio"][i]],
                "visual_label": CHERMA_EMOTIONS[uni["vision"][i]],
                "video_label": CHERMA_EMOTIONS[y[i]],
            })
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{split}.json").write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
        for m, (folder, suffix, _) in LAYOUT.items():
            t, dim = shapes[m]
            arrays = C.class_features(rng, uni[m], k, [t] * n, dim, feature_strength, C.SALTS[m])
            target = out / folder / split
            target.mkdir(parents=True, exist_ok=True)
            for rid, arr in zip(ids, arrays):
                np.save(target / f"{rid}{suffix}", arr)
    return out
