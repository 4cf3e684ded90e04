"""The expert gate does not collapse by default: the balance regulariser (``fusion.gate_balance_weight``, 0.1 by
default) holds the batch-mean expert gate away from one-hot against a steady pull towards one expert, which
takes it to one-hot when the regulariser is off; each sample's gate still depends on its input.

Run: OMP_NUM_THREADS=1 .venv/bin/python -m pytest tests/model/fusion/test_gating_balance.py -q -p no:cacheprovider
"""

from __future__ import annotations

import pytest
import torch

from egmf.model.fusion import ExpertFusion, FusionConfig

pytestmark = pytest.mark.usefixtures("one_thread")

DIMS = {"s": {"text": 6, "audio": 5, "vision": 4}}
PULL = 0.05  # a task signal of this strength favours expert 0: -PULL * log(batch-mean weight of expert 0)


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    f = {"text": torch.randn(n, 4, 6, generator=g), "audio": torch.randn(n, 8, 5, generator=g),
         "vision": torch.randn(n, 3, 4, generator=g)}
    masks = {k: torch.ones(n, v.shape[1], dtype=torch.bool) for k, v in f.items()}
    y = (f["audio"][:, 1:] * f["audio"][:, :-1]).mean((1, 2))  # a local cue: the product of adjacent frames
    return f, masks, y


def _train(steps: int = 60, **kw):
    torch.manual_seed(0)
    fusion = ExpertFusion(FusionConfig(d_model=16, n_heads=2, gate_hidden=8, global_layers=1, dropout=0.0, **kw),
                          DIMS, 8).train()
    head = torch.nn.Linear(8, 1)
    opt = torch.optim.Adam([*fusion.parameters(), *head.parameters()], lr=1e-2)
    for step in range(steps):
        f, m, y = _data(32, step)
        out = fusion(f, m, ["s"] * 32)
        task = ((head(out.tokens.mean(1)).squeeze(-1) - y) ** 2).mean()
        pull = -PULL * out.gates["expert"][:, 0].mean().log()
        opt.zero_grad()
        (task + pull + out.aux_loss).backward()
        opt.step()
    with torch.no_grad():
        f, m, _ = _data(64, 999)
        return fusion.eval()(f, m, ["s"] * 64).gates["expert"]


def test_default_balance_keeps_the_expert_gate_off_one_hot_and_off_lets_it_collapse():
    assert FusionConfig().gate_balance_weight == 0.1
    default = _train()
    off = _train(gate_balance_weight=0.0)
    assert float(default.mean(0).max()) < 0.8, default.mean(0)
    assert float(off.mean(0)[0]) > 0.9, off.mean(0)  # the same pull, unopposed
    # still sample-conditioned: the gate is not a constant
    assert float(default.std(0).max()) > 1e-3, default.std(0)
