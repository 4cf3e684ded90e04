"""``egmf data synth | inspect | convert | datasets`` as a user runs them (typer's CliRunner).

Run: .venv/bin/python -m pytest tests/cli/test_data.py -q
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from egmf.cli.data import parse_options
from egmf.cli.main import app
from egmf.data import safe_format
from egmf.data.registry import load_dataset
from egmf.errors import ConfigError

runner = CliRunner()
SMALL_MMSA = ["--option", "dims={text: 8, audio: 5, vision: 6}", "--option", "seq_lens={text: 10, audio: 16, vision: 12}"]
# (synth arguments, dataset name, file the loader reads relative to --out)
SYNTH = {
    "mosi": (["--format", "mmsa", "--flavour", "mosi", "--variant", "aligned", *SMALL_MMSA], "mosi", "aligned_10.pkl"),
    "mosei": (["--format", "mmsa", *SMALL_MMSA], "mosei", "unaligned_10.pkl"),
    "sims": (["--format", "mmsa", "--flavour", "sims", *SMALL_MMSA], "sims", "unaligned_10.pkl"),
    "simsv2": (["--format", "mmsa", "--flavour", "simsv2", *SMALL_MMSA], "simsv2", "ch-simsv2s.pkl"),
    "meld": (["--format", "meld", "--option", "dims={text: 8}"], "meld", "."),
    "cherma": (["--format", "cherma"], "cherma", "."),
    "custom": (["--format", "custom", "--option", "task=msa"], "custom", "."),
}


def run(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize("case", list(SYNTH))
def test_synth_then_inspect(tmp_path, case):
    args, name, rel = SYNTH[case]
    out = tmp_path / case
    result = run("data", "synth", *args, "--out", out, "--size", "tiny", "--seed", "3")
    assert result.exit_code == 0, result.output
    path = out / rel
    assert f"egmf data inspect {path if rel != '.' else out} --dataset {name}" in result.output
    assert [p.name for p in tmp_path.iterdir()] == [case]  # no temporary folder of the atomic write left behind

    result = run("data", "inspect", path, "--dataset", name)
    assert result.exit_code == 0, result.output
    assert "frames per sample" in result.output and "NaN / -inf / +inf" in result.output

    result = run("data", "inspect", path, "--dataset", name, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["dataset"] == name
    assert sum(r["n"] for r in report["splits"].values()) == 24 + 8 + 8


def test_convert_then_inspect_and_load(tmp_path):
    run("data", "synth", *SYNTH["sims"][0], "--out", tmp_path / "src", "--size", "tiny")
    pkl = tmp_path / "src" / "unaligned_10.pkl"
    result = run("data", "convert", pkl, "--dataset", "sims", "--out", tmp_path / "safe")
    assert result.exit_code == 0, result.output
    assert "train 24, valid 8, test 8" in result.output
    assert safe_format.is_safe_dataset(tmp_path / "safe")
    a, b = load_dataset("sims", pkl), load_dataset("sims", tmp_path / "safe")
    assert [s.extra_labels for s in a.splits["test"]] == [s.extra_labels for s in b.splits["test"]]
    report = json.loads(run("data", "inspect", tmp_path / "safe", "--dataset", "sims", "--json").output)
    assert report["format"] == "egmf-safe"


def test_refuses_to_overwrite(tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    for args in (["data", "synth", "--format", "meld", "--out", out],
                 ["data", "convert", tmp_path, "--dataset", "meld", "--out", out]):
        result = run(*args)
        assert result.exit_code == 2
        assert "refusing to overwrite" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]


def test_empty_existing_folder_is_fine(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run("data", "synth", "--format", "meld", "--out", tmp_path / "empty", "--size", "tiny")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "empty" / "train_sent_emo.csv").is_file()


@pytest.mark.parametrize(
    "args,message",
    [
        (["data", "inspect", ".", "--dataset", "iemocap"],
         "unknown dataset 'iemocap'; valid choices: cherma, custom, meld, mosei, mosi, sims, simsv2"),
        (["data", "synth", "--format", "avi", "--out", "x"], "valid choices: mmsa, meld, cherma, custom"),
        (["data", "synth", "--format", "meld", "--flavour", "mosi", "--out", "x"], "--flavour applies to --format mmsa only"),
        (["data", "synth", "--format", "mmsa", "--flavour", "iemocap", "--out", "x"], "unknown MMSA flavour 'iemocap'"),
        (["data", "synth", "--format", "meld", "--size", "huge", "--out", "x"], "--size: size: expected one of tiny"),
        (["data", "synth", "--format", "cherma", "--option", "dims=3", "--out", "x"], "unknown options ['dims']; valid: "),
        (["data", "synth", "--format", "meld", "--option", "dims", "--out", "x"], "--option: expected key=value"),
        (["data", "synth", "--format", "meld", "--option", "dims={smell: 3}", "--out", "x"],
         "bad --option value: dims: unknown modalities ['smell']"),
        (["data", "synth", "--format", "custom", "--option", "dims=3", "--out", "x"], "bad --option value: "),
        (["data", "inspect", "missing.pkl", "--dataset", "mosi"], "missing.pkl: path: expected an existing file"),
    ],
)
def test_errors_are_one_clean_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output.replace("\n", "")
    assert "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_bad_pickle_is_a_clean_error(tmp_path):
    bad = tmp_path / "unaligned_50.pkl"
    bad.write_bytes(b"\x80\x04garbage")
    result = run("data", "inspect", bad, "--dataset", "mosei")
    assert result.exit_code == 2 and "expected a complete, readable pickle file" in result.output


def test_loader_options_reach_the_loader(tmp_path):
    run("data", "synth", *SYNTH["mosi"][0], "--out", tmp_path / "m", "--size", "tiny")
    (tmp_path / "m" / "unaligned_10.pkl").write_bytes((tmp_path / "m" / "aligned_10.pkl").read_bytes())
    ambiguous = run("data", "inspect", tmp_path / "m", "--dataset", "mosi")
    assert ambiguous.exit_code == 2 and "exactly one pickle" in ambiguous.output
    chosen = run("data", "inspect", tmp_path / "m", "--dataset", "mosi", "--option", "variant=aligned", "--json")
    assert chosen.exit_code == 0 and json.loads(chosen.output)["source"].endswith("aligned_10.pkl")


def test_datasets_lists_every_name():
    result = run("data", "datasets")
    assert result.exit_code == 0
    for name in ("mosi", "mosei", "sims", "simsv2", "meld", "cherma", "custom"):
        assert name in result.output


def test_parse_options():
    assert parse_options(["nan=zero", "dims={text: 16}", "seed=3", "flag=true", "empty="]) == {
        "nan": "zero", "dims": {"text": 16}, "seed": 3, "flag": True, "empty": ""}
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_options(["=3"])
