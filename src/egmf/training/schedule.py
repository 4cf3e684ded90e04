"""When the trainer scores valid: a plan of steps fixed before training, so a resumed run keeps the same plan.

Three modes, from ``train``'s fields:

- ``num_evals > 0``: that many evaluations, evenly spread, the last one at the final step;
- ``eval_every > 0``: every ``eval_every`` steps and at the final step, where a multiple of ``eval_every`` less
  than half an interval before the final step is dropped (it would score nearly the same weights twice: 100
  steps with ``eval_every: 33`` evaluate at 33, 66 and 100, not 33, 66, 99 and 100);
- both 0: at the end of every epoch (the plan is empty).

Whatever the mode, the trainer scores valid once more at the end only when training stopped at a step that
was not evaluated (early stopping, the time limit, or an epoch-mode run cut by ``max_steps``).
"""

from __future__ import annotations


def evaluation_steps(total_steps: int, eval_every: int = 0, num_evals: int = 0) -> list[int]:
    """The optimiser steps after which valid is scored, ascending; ``[]`` means once per epoch."""
    if total_steps < 1:
        raise ValueError(f"evaluation_steps: total_steps must be >= 1, got {total_steps}")
    if num_evals:
        n = min(num_evals, total_steps)
        # Integer arithmetic: step k * total / n rounded up, so the last one is exactly total_steps.
        return sorted({-(-k * total_steps // n) for k in range(1, n + 1)})
    if eval_every:
        steps = list(range(eval_every, total_steps, eval_every))
        if steps and 2 * (total_steps - steps[-1]) < eval_every:
            steps.pop()
        return [*steps, total_steps]
    return []
