"""``egmf extract``: raw media -> the custom dataset format that ``egmf train`` loads as ``custom``.

    egmf extract --layout meld --in MELD.Raw --out data/meld_feats --workers 2
    egmf extract --layout custom --in my_clips --out data/mine --audio-features egemaps,whisper --transcribe auto
"""

from __future__ import annotations

from pathlib import Path

import typer

from egmf.errors import EGMFError


def extract(
    layout: str = typer.Option(..., help="input layout: meld, simsv2, cherma or custom"),
    in_dir: Path = typer.Option(..., "--in", help="input folder, as the dataset is distributed"),
    out: Path = typer.Option(..., help="output folder (custom format); an unfinished run here resumes"),
    workers: int = typer.Option(1, help="worker processes (each loads its own models)"),
    audio_features: str = typer.Option("egemaps,mfcc,whisper", help="comma-separated: egemaps, mfcc, whisper"),
    audio_main: str = typer.Option("", help="set written to features/audio (default whisper if selected)"),
    whisper: str = typer.Option("", help="tiny.en, base or small (default: tiny.en for en, base for zh)"),
    transcribe: str = typer.Option("auto", help="auto: Whisper writes missing transcripts; never"),
    lang: str = typer.Option("", help="en or zh (default: the layout's language; custom: en)"),
    text_features: str = typer.Option("sentence", help="sentence (sentence-encoder vectors) or none"),
    sentence_encoder: str = typer.Option("auto", help="auto (MiniLM for en, multilingual-e5-small for zh), "
                                         "minilm or multilingual-e5-small"),
    fps: float = typer.Option(5.0, help="video frames per second analysed for faces"),
    overwrite: bool = typer.Option(False, help="delete features a different run left in --out"),
) -> None:
    """Extract audio, face and text features from raw media into OUT (data.csv, features/, dataset.yaml)."""
    from egmf.features.config import ExtractSettings
    from egmf.features.extract import run_extraction
    from egmf.features.layouts import read_layout

    try:
        items, info = read_layout(layout, in_dir, lang or None)
        settings = ExtractSettings(
            audio_features=tuple(s.strip() for s in audio_features.split(",") if s.strip()),
            audio_main=audio_main, whisper=whisper, transcribe=transcribe, lang=lang or info["lang"],
            text_features=text_features, sentence_encoder=sentence_encoder, fps=fps,
        )
        info["lang"] = settings.lang
        report = run_extraction(items, info, out, settings, workers=workers, overwrite=overwrite,
                                source=f"{layout}:{in_dir}")
    except EGMFError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    c = report["counts"]
    typer.echo(f"{c['ok']} extracted, {c['skipped']} already done, {c['failed']} failed "
               f"({c['no_face']} without a face, {c['no_audio']} without audio) in {report['wall_s']} s -> {out}")
    for f in report["failures"][:20]:
        typer.echo(f"  failed {f['id']}: {f['error']}", err=True)
    if len(report["failures"]) > 20:
        typer.echo(f"  ... {len(report['failures']) - 20} more in {out / 'extract_report.json'}", err=True)
