"""``egmf predict --video clip.mp4`` / ``--audio clip.wav --text "..."``: one sample from raw media.

The clip must be turned into features exactly as the training data was (same extractor settings, same
dims), so the settings are read from the ``extract_report.json`` that ``egmf extract`` wrote beside the
training data (key ``settings``), and the resulting dims are checked against the checkpoint before predicting.
"""

from __future__ import annotations

from pathlib import Path

from egmf.data.schema import MODALITIES, DatasetInfo, Sample
from egmf.errors import ConfigError, DataFormatError


def sample_from_files(
    cfg, infos: dict[str, DatasetInfo], feature_dims: dict[str, dict[str, int]], video=None, audio=None, text=None,
    target=None,
) -> Sample:
    """A :class:`Sample` for ``infos[target]`` (the only trained dataset when ``target`` is None)."""
    from egmf.features.media import sample_from_media

    if cfg.data.speaker_normalization:
        raise ConfigError(
            "predict --video/--audio: this model was trained with data.speaker_normalization (inputs standardised "
            "by each speaker's own statistics, over that speaker's clips); one clip has none. Extract the speaker's "
            "clips into a dataset (egmf extract) and run egmf predict --dataset custom --path DIR"
        )
    target = _target(infos, target)
    for path in (video, audio):
        if path is not None and not Path(path).is_file():
            raise DataFormatError(path, "media file", "an existing video or audio file")
    settings = extract_settings(cfg, target)
    info = infos[target]
    sample = sample_from_media(video=video, audio=audio, text=text, settings=settings, dataset=target, task=info.task)
    sample.lang = info.lang
    _match_text_source(sample, cfg)
    _check_dims(sample, feature_dims[target])
    return sample


def _target(infos: dict[str, DatasetInfo], target: str | None) -> str:
    if target is None:
        if len(infos) > 1:
            raise ConfigError(f"--target: this checkpoint answers several datasets; choose one of {sorted(infos)}")
        return next(iter(infos))
    if target not in infos:
        raise ConfigError(f"--target: unknown dataset {target!r}; this checkpoint knows {sorted(infos)}")
    return target


def extract_settings(cfg, target: str):
    """The extractor settings saved beside the training data of ``target`` (defaults when none were saved)."""
    import json

    from egmf.features.config import ExtractSettings

    for entry in cfg.data.datasets:
        report = Path(entry.path) / "extract_report.json"
        if report.is_file():
            settings = json.loads(report.read_text(encoding="utf-8")).get("settings")
            if isinstance(settings, dict):
                return ExtractSettings.from_dict(settings)
    return ExtractSettings()


def _match_text_source(sample: Sample, cfg) -> None:
    """Give the clip the text features the model was trained with."""
    from egmf.training.data import apply_text_source

    apply_text_source([sample], cfg.model.text_source, cfg.model.sentence_encoder)


def _check_dims(sample: Sample, dims: dict[str, int]) -> None:
    for m in MODALITIES:
        a = sample.features(m)
        if a is None:
            continue
        want = dims.get(m, 0)
        if want and a.shape[-1] != want:
            raise DataFormatError(
                f"<{m} features of the clip>", m,
                f"dim {want} as in the training data (extract with the same settings)", a.shape[-1],
            )
        if not want:  # the model never saw this modality: leave it out rather than crash its encoders
            setattr(sample, "text_feats" if m == "text" else m, None)
