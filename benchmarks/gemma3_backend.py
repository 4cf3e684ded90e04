"""The embedded multilingual LLM, Gemma 3 270M: load and cache time, and how many tokens Chinese takes (not a test).

    .venv/bin/python benchmarks/gemma3_backend.py [--work /tmp/egmf_gemma3_bench]

1. ``load_llm`` of backend ``gemma3-270m`` into a fresh cache folder under ``--work`` (join the four GGUF chunks,
   dequantise the Q4_K_M GGUF with transformers, write safetensors + tokenizer), then the same call again (the
   cache read back), each timed on the wall clock.
2. Tokens per Chinese sentence with Gemma's tokenizer and with SmolLM2's (the English default), against the
   sentence's characters and UTF-8 bytes.
3. A sanity check of the dequantised weights: Gemma's greedy continuation of a few prompts.

Writes ``benchmarks/results/gemma3_backend.md``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import Section, outside_repo, peak_rss_mb  # noqa: E402

SENTENCES = [
    "我今天真的很高兴，因为考试终于通过了。",  # 19 characters
    "你怎么能这样对我？我真的很生气！",
    "这部电影的剧情很无聊，演员的表演也很差。",
    "外面下着大雨，我一个人在家，感觉有点孤单。",
]
PROMPTS = ["中国的首都是", "我今天考试通过了，心情非常", "The capital of France is"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/egmf_gemma3_bench"))
    args = ap.parse_args()
    import pandas as pd
    import torch

    from egmf.model.llm.backends import load_llm
    from egmf.model.llm.config import LLMConfig

    work = outside_repo(args.work)
    cache = work / "gemma3-cache"
    shutil.rmtree(cache, ignore_errors=True)
    section = Section("gemma3_backend", "Gemma 3 270M: load and cache time, tokens per Chinese sentence")
    cfg = LLMConfig(backend="gemma3-270m", cache_dir=str(cache))
    t0 = time.perf_counter()
    load_llm(cfg)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    model, tok = load_llm(cfg)
    again = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in cache.iterdir()) / 2**20
    c = model.config
    section.add(
        "## Load", "",
        f"- first load (join the chunks, dequantise, write the cache): **{first:.1f} s**; cached load: "
        f"**{again:.1f} s**; cache {size:.0f} MiB of safetensors + tokenizer",
        f"- model: {type(model).__name__} ({c.model_type}), {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M "
        f"parameters, {c.num_hidden_layers} layers, hidden {c.hidden_size}, {c.num_attention_heads} heads / "
        f"{c.num_key_value_heads} KV head, sliding window {c.sliding_window} "
        f"({c.layer_types.count('sliding_attention')} of {len(c.layer_types)} layers), vocabulary {c.vocab_size}",
        f"- peak resident memory {peak_rss_mb() / 1024:.2f} GiB", "",
    )
    smol_tok = load_llm(LLMConfig(backend="smollm2-135m"))[1]
    rows = []
    for s in SENTENCES:
        rows.append({"sentence": s, "characters": len(s), "UTF-8 bytes": len(s.encode()),
                     "Gemma 3 tokens": len(tok(s, add_special_tokens=False)["input_ids"]),
                     "SmolLM2 tokens": len(smol_tok(s, add_special_tokens=False)["input_ids"]),
                     "Gemma round trip": tok.decode(tok(s, add_special_tokens=False)["input_ids"]) == s})
    table = pd.DataFrame(rows)
    per_char = table["Gemma 3 tokens"].sum() / table["characters"].sum()
    smol_per_char = table["SmolLM2 tokens"].sum() / table["characters"].sum()
    section.add("## Tokens per Chinese sentence", "", table.to_markdown(index=False), "",
                f"Gemma 3: {per_char:.2f} tokens per character; SmolLM2: {smol_per_char:.2f}.", "")
    lines = []
    for prompt in PROMPTS:
        ids = tok(prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=8, do_sample=False)
        lines.append(f"- `{prompt}` -> `{tok.decode(out[0][ids['input_ids'].shape[1]:], skip_special_tokens=True)!r}`")
    section.add("## Greedy continuations (the dequantised weights are sane)", "", *lines)
    section.write([f"cache written to `{cache}` (a fresh folder; removed first)"])


if __name__ == "__main__":
    main()
