"""PNG plots for a run folder: confusion matrix (ERC), predicted vs true scores (MSA), mean gate weights.

Figures are drawn with matplotlib's object API on the Agg canvas (``matplotlib.figure.Figure``), never
through pyplot: no display is needed, no global backend is switched, and nothing leaks between calls.

Chinese labels (CHERMA, SIMS): when a CJK font is installed it is added as a fallback after DejaVu Sans;
when none is, missing glyphs would draw as boxes and matplotlib would warn once per glyph. Pass ``gloss``
(e.g. ``dict(zip(CHERMA_EMOTIONS, CHERMA_GLOSS))``) to write the English glosses instead; either way the
glyph warnings are silenced so a run log stays readable.
"""

from __future__ import annotations

import contextlib
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib import font_manager
from matplotlib.figure import Figure

# Common CJK families, in order of preference; only installed ones are used (a missing family named in
# font.family makes matplotlib log "findfont: Font family ... not found").
_CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Heiti SC",
    "Arial Unicode MS",
)


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The first installed CJK font family, or ``None``."""
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in _CJK_FAMILIES if name in installed), None)


@contextlib.contextmanager
def _plot_context() -> Iterator[None]:
    families = ["DejaVu Sans"] + ([cjk_font()] if cjk_font() else [])
    with warnings.catch_warnings(), matplotlib.rc_context({"font.family": families}):
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
        yield


def _text(labels: Sequence[object], gloss: Mapping[str, str] | None) -> list[str]:
    return [gloss.get(str(x), str(x)) if gloss else str(x) for x in labels]


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=120, bbox_inches="tight")
    return path


# ------------------------------------------------------------------------------------ confusion matrix
def normalize_rows(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the recall per true class); a row with no samples stays 0."""
    cm = np.asarray(cm, dtype=np.float64)
    sums = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, sums, out=np.zeros_like(cm), where=sums > 0)


def plot_confusion_matrix(
    cm: Sequence[Sequence[float]] | np.ndarray,
    labels: Sequence[str],
    path: str | Path,
    normalize: bool = True,
    title: str | None = None,
    gloss: Mapping[str, str] | None = None,
) -> Path:
    """Heat map of ``cm`` (rows = truth, columns = prediction, in ``labels`` order), cells annotated."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(labels):
        raise ValueError(f"confusion matrix of shape {cm.shape} does not match {len(labels)} labels")
    shown = normalize_rows(cm) if normalize else cm.astype(np.float64)
    names = _text(labels, gloss)
    n = len(names)
    with _plot_context():
        fig = Figure(figsize=(1.0 + 0.75 * n, 0.8 + 0.7 * n))
        ax = fig.add_subplot()
        im = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(shown.max(), 1.0))
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks(range(n), names, rotation=45, ha="right")
        ax.set_yticks(range(n), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title or ("confusion matrix (row-normalised)" if normalize else "confusion matrix"))
        threshold = 0.5 * (1.0 if normalize else max(shown.max(), 1.0))
        for i in range(n):
            for j in range(n):
                text = f"{shown[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if shown[i, j] > threshold else "black")
        return _save(fig, path)


# ---------------------------------------------------------------------------------- predicted vs true
def plot_scores(
    pred: Sequence[float] | np.ndarray,
    true: Sequence[float] | np.ndarray,
    path: str | Path,
    score_range: tuple[float, float],
    title: str | None = None,
) -> Path:
    """Scatter of predicted against true scores with the identity line over ``score_range``."""
    p = np.asarray(pred, dtype=np.float64).ravel()
    t = np.asarray(true, dtype=np.float64).ravel()
    if len(p) != len(t):
        raise ValueError(f"predictions has {len(p)} values but truths has {len(t)}; they must match")
    lo, hi = float(score_range[0]), float(score_range[1])
    if not lo < hi:
        raise ValueError(f"score_range must be (low, high) with low < high, got {score_range}")
    finite = np.isfinite(p) & np.isfinite(t)
    # The axes cover the score range and any point outside it, so nothing is silently cut off.
    a = min(lo, *(p[finite].tolist() + t[finite].tolist())) if finite.any() else lo
    b = max(hi, *(p[finite].tolist() + t[finite].tolist())) if finite.any() else hi
    pad = 0.05 * (b - a)
    with _plot_context():
        fig = Figure(figsize=(5.0, 5.0))
        ax = fig.add_subplot()
        ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1, label="identity")
        ax.scatter(t[finite], p[finite], s=10, alpha=0.5, label=f"samples (n={int(finite.sum())})")
        ax.set_xlim(a - pad, b + pad)
        ax.set_ylim(a - pad, b + pad)
        ax.set_aspect("equal")
        ax.set_xlabel("true score")
        ax.set_ylabel("predicted score")
        ax.set_title(title or "predicted vs true")
        ax.legend(loc="upper left", fontsize=8)
        return _save(fig, path)


# ---------------------------------------------------------------------------------------- gate weights
def gate_means(
    gates: Mapping[str, np.ndarray], group_labels: Sequence[object] | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """Mean gate weights per group: ``{gate: {group: [n]}}``, groups in order of first appearance.

    ``gates[name]`` is ``[N, n]`` (one weight per component for each of N samples); ``group_labels`` gives
    each sample's group (its class, or a score bin), ``None`` means one group ``"all"``.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, g in gates.items():
        g = np.asarray(g, dtype=np.float64)
        if g.ndim != 2 or g.shape[0] == 0:
            raise ValueError(f"gate {name!r}: expected a non-empty [N, n] array, got shape {g.shape}")
        groups = ["all"] * g.shape[0] if group_labels is None else [str(x) for x in group_labels]
        if len(groups) != g.shape[0]:
            raise ValueError(f"gate {name!r} has {g.shape[0]} samples but group_labels has {len(groups)}")
        order = list(dict.fromkeys(groups))
        idx = np.array(groups, dtype=object)
        out[name] = {grp: g[idx == grp].mean(axis=0) for grp in order}
    return out


def plot_gate_weights(
    gates: Mapping[str, np.ndarray],
    names: Mapping[str, Sequence[str]],
    group_labels: Sequence[object] | None,
    path: str | Path,
    group_order: Sequence[str] | None = None,
    gloss: Mapping[str, str] | None = None,
) -> Path:
    """Grouped bar charts of the mean gate weights per group, one subplot per gate.

    ``gates``: ``{"expert": [N, n_experts], "modality.<expert>": [N, n_modalities], ...}`` (the keys of
    :class:`egmf.model.base.FusionOutput.gates`); ``names[gate]`` labels the ``n`` components (indices if a
    gate has no entry); ``group_order`` fixes the order of groups on the x axis (e.g. the label order).
    The ``"expert"`` gate (level 2) is drawn first, the modality gates (level 1) after it.
    """
    if not gates:
        raise ValueError("plot_gate_weights: no gates to plot")
    means = gate_means(gates, group_labels)
    order = sorted(means, key=lambda k: (k != "expert", list(gates).index(k)))
    n_plots = len(order)
    ncols = 1 if n_plots == 1 else 2
    nrows = (n_plots + ncols - 1) // ncols
    with _plot_context():
        fig = Figure(figsize=(6.0 * ncols, 3.4 * nrows))
        for i, gate in enumerate(order):
            per_group = means[gate]
            groups = [g for g in (group_order or []) if g in per_group] + [
                g for g in per_group if g not in (group_order or [])
            ]
            n = len(next(iter(per_group.values())))
            comp = list(names.get(gate, [str(j) for j in range(n)]))
            if len(comp) != n:
                raise ValueError(f"gate {gate!r} has {n} components but names[{gate!r}] has {len(comp)}")
            ax = fig.add_subplot(nrows, ncols, i + 1)
            x = np.arange(len(groups))
            width = 0.8 / n
            for j, cname in enumerate(comp):
                heights = [per_group[g][j] for g in groups]
                ax.bar(x - 0.4 + width * (j + 0.5), heights, width, label=str(cname))
            crowded = len(groups) > 4
            ax.set_xticks(x, _text(groups, gloss), rotation=30 if crowded else 0, ha="right" if crowded else "center")
            top = max(1.0, max(float(v.max()) for v in per_group.values()))
            ax.set_ylim(0.0, top * 1.05)
            ax.set_ylabel("mean gate weight")
            ax.set_title(gate)
            ax.legend(fontsize=7, ncols=min(n, 4), loc="upper right")
        fig.tight_layout()
        return _save(fig, path)
