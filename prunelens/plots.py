"""Figures for results files: every line figure in the project comes from ``curves_figure``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Curve:
    """One line: y against x, with an optional confidence band [low, high]."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    low: Sequence[float] | None = None
    high: Sequence[float] | None = None
    style: str = "-"


def curves_figure(panels: dict[str, list[Curve]], path: Path, *, title: str, xlabel: str, ylabel: str,
                  diagonal: bool = False, invert_x: bool = False, ylim: tuple[float, float] | None = None) -> Path:  # fmt: skip
    """One panel per entry of ``panels`` (side by side, shared y axis), each with its curves, CI bands,
    a legend and axis labels; ``diagonal`` draws y = x (the uniform-deletion reference). Saves a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), sharey=True, squeeze=False)
    for axis, (name, curves) in zip(axes[0], panels.items()):
        for curve in curves:
            (line,) = axis.plot(curve.x, curve.y, curve.style, marker="o", markersize=3, label=curve.label)
            if curve.low is not None and curve.high is not None:
                axis.fill_between(curve.x, curve.low, curve.high, color=line.get_color(), alpha=0.15)
        if diagonal:
            axis.plot([0, 1], [0, 1], ":", color="grey", label="uniform deletion")
        if invert_x:
            axis.invert_xaxis()
        if ylim is not None:
            axis.set_ylim(*ylim)
        axis.set_title(name, fontsize=10)
        axis.set_xlabel(xlabel)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    axes[0][0].set_ylabel(ylabel)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)
