"""One clip to features (egmf.features.media): what a clip lacks is masked, and a clip becomes an
unlabelled sample."""

from __future__ import annotations

import pytest

from egmf.errors import ConfigError
from egmf.features.config import ExtractSettings
from egmf.features.media import ClipExtractor, sample_from_media


def test_clip_extractor_masks_what_a_clip_lacks(media_dir):
    ex = ClipExtractor(ExtractSettings(audio_features=("egemaps", "whisper"), transcribe="never",
                                       text_features="none"))
    mute = ex.extract(video=media_dir / "face_mute.mp4", text="hi")
    assert mute.audio is None and mute.sequences == {} and mute.vision.shape[1] == 139
    assert mute.notes["audio"] == "no audio track"
    blank = ex.extract(video=media_dir / "blank.mp4", text="hi")
    assert blank.vision is None and blank.notes["vision"] == "no face"
    assert blank.audio.shape[1] == 384 and blank.pooled["whisper"].shape == (1, 768)
    assert blank.sequences["egemaps"].shape[1] == 25 and blank.pooled["egemaps"].shape == (1, 88)
    silent = ex.extract(audio=media_dir / "silent.wav")
    assert silent.text == "" and silent.audio.shape == (50, 384)  # 1 s, no speech region found: all kept
    # The whisper sequence keeps the speech region only: 1 s of tone inside 2 s of audio.
    toned = ex.extract(audio=media_dir / "tone.wav")
    assert abs(toned.audio.shape[0] - 50) <= 3


def test_sample_from_media_gives_an_unlabelled_sample(media_dir):
    s = sample_from_media(video=media_dir / "face.mp4", text="look at this",
                          settings=ExtractSettings(audio_features=("egemaps",), transcribe="never"),
                          dataset="mine")
    assert (s.id, s.text, s.label, s.dataset) == ("face", "look at this", None, "mine")
    assert s.audio.shape[1] == 25 and s.vision.shape[1] == 139 and s.text_feats.shape[1] == 384
    with pytest.raises(ConfigError, match="at least one of video, audio or text"):
        sample_from_media()


def test_chinese_text_gets_the_multilingual_sentence_vector():
    """MiniLM reads Chinese as unknown pieces: a zh clip's text arrays come from multilingual-e5-small."""
    import numpy as np

    from egmf.features.text import sentence_embeddings

    ex = ClipExtractor(ExtractSettings(lang="zh", audio_features=(), transcribe="never"))
    clip = ex.extract(text="这本书写得太好了")
    expected = sentence_embeddings(["这本书写得太好了"], encoder="multilingual-e5-small")
    assert clip.text_feats.shape == (1, 384) and clip.pooled["sentence"].shape == (1, 384)
    np.testing.assert_allclose(clip.text_feats, expected, atol=1e-6)
    np.testing.assert_allclose(clip.pooled["sentence"], expected, atol=1e-6)
    en = ClipExtractor(ExtractSettings(audio_features=(), transcribe="never")).extract(text="what a great book")
    assert en.text_feats.shape[0] >= 3 and en.pooled["sentence"].shape == (1, 384)  # MiniLM token vectors
