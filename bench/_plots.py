"""Learning-curve plots shared by the recommender benches (matplotlib, written as PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def plot_validation_curves(series: Sequence[tuple[str, list[dict]]], title: str, ylabel: str, path: Path) -> None:
    """One line per (label, history) pair, one colour per label (several seeds share a colour),
    x = ``epoch``, y = ``N@10`` of each history record, with each line's best epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    colours: dict[str, str] = {}
    for label, h in series:
        if not h:
            continue
        first = label not in colours
        colour = colours.setdefault(label, f"C{len(colours)}")
        ax.plot([x["epoch"] for x in h], [x["N@10"] for x in h], color=colour, lw=1, alpha=0.8,
                label=label if first else None)
        best = max(h, key=lambda x: x["N@10"])
        ax.scatter([best["epoch"]], [best["N@10"]], color=colour, s=14, zorder=3)
    ax.set_xlabel("epoch"), ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
