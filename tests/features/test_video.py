"""Face expression features (egmf.features.video) on scikit-image's astronaut and on a blank video."""

from __future__ import annotations

import pytest


def test_face_expression_on_the_astronaut_and_none_on_a_blank_frame(media_dir):
    from egmf.features.video import FER_LABELS, VISION_DIM, FaceExpression, decode_frames

    frames = decode_frames(media_dir / "face.mp4", fps=5)
    assert len(frames) == 10  # 2 s at 5 frames/s
    fx = FaceExpression()
    assert fx.embed_index is not None  # the penultimate layer is reachable
    vis, seen = fx.clip_features(frames[:2])
    assert seen == 2 and vis.shape == (2, VISION_DIM)
    probs = vis[0, 128:135]
    assert probs.sum() == pytest.approx(1.0, abs=1e-3)
    assert FER_LABELS[int(probs.argmax())] == "happy"  # she smiles
    # Face box as fractions of the frame (the astronaut's face is left of centre, about 0.19 wide).
    assert vis[0, -4] == pytest.approx(0.44, abs=0.05) and vis[0, -2] == pytest.approx(0.19, abs=0.04)
    blank = decode_frames(media_dir / "blank.mp4", fps=5)
    assert fx.clip_features(blank) == (None, len(blank))
    assert decode_frames(media_dir / "tone.wav", fps=5) is None  # audio only: no video stream
