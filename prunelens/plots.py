"""Figures for results files: every line figure in the project comes from ``curves_figure``, every bar
chart from ``bars_figure``, every labelled scatter from ``scatter_figure``."""

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
                  diagonal: bool = False, invert_x: bool = False, ylim: tuple[float, float] | None = None,
                  columns: int | None = None, sharey: bool = True) -> Path:  # fmt: skip
    """One panel per entry of ``panels`` (side by side, ``columns`` to a row, a shared y axis unless ``sharey`` is
    False), each with its
    curves, CI bands, a legend and axis labels; ``diagonal`` draws y = x (the uniform-deletion reference).
    Saves a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(columns or len(panels), len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 4 * rows), sharey=sharey, squeeze=False)
    for axis in axes.flat[len(panels) :]:
        axis.set_visible(False)
    for axis, (name, curves) in zip(axes.flat, panels.items()):
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
    for row in axes:
        row[0].set_ylabel(ylabel)
    return _save(figure, path, title)


def bars_figure(series: dict[str, dict[str, float]], path: Path, *, title: str, xlabel: str, ylabel: str) -> Path:
    """Grouped bars: one group per key of the inner dicts (in the first series' order), one bar per series
    (with a legend), each bar labelled with its value. Saves a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = list(next(iter(series.values()), {}))
    width = 0.8 / max(len(series), 1)
    figure, axis = plt.subplots(figsize=(max(5.0, 1.1 * len(groups) * max(len(series), 1)), 4))
    for index, (label, values) in enumerate(series.items()):
        x = np.arange(len(groups)) + (index - (len(series) - 1) / 2) * width
        bars = axis.bar(x, [values.get(g, 0.0) for g in groups], width, label=label)
        axis.bar_label(bars, fmt="%.2f", fontsize=7)
    axis.set_xticks(np.arange(len(groups)), groups)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title, fontsize=11)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=7)
    return _save(figure, path)


@dataclass
class Scatter:
    """One panel of labelled points {label: (x, y)}, its y-axis label, an optional reference level (dashed) and an
    optional second one (dotted, e.g. zero)."""

    points: dict[str, tuple[float, float]]
    ylabel: str
    reference: float | None = None
    reference_label: str = ""
    baseline: float | None = None


MARKERS = "osD^v<>pP*Xh"


def frontier(points: dict[str, tuple[float, float]]) -> set[str]:
    """The labels of the points no other point beats on both x and y (higher is better on both)."""
    return {label for label, (x, y) in points.items()
            if not any(ox >= x and oy >= y and (ox, oy) != (x, y) for ox, oy in points.values())}  # fmt: skip


def scatter_figure(panels: dict[str, Scatter], path: Path, *, title: str, xlabel: str, logx: bool = False,
                   columns: int | None = None, label: str = "all") -> Path:  # fmt: skip
    """One panel per entry of ``panels`` (``columns`` to a row). Each label keeps one colour and marker in every
    panel and is named in a legend below the panels; ``label`` = "all" also writes every label beside its point,
    "frontier" only those on the panel's Pareto frontier (``frontier``). The panel's reference level is a dashed
    line, its baseline a dotted one. Saves a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(name for panel in panels.values() for name in panel.points))
    colours = plt.get_cmap("tab20")
    style = {name: (colours(i % 20), MARKERS[i % len(MARKERS)]) for i, name in enumerate(labels)}
    columns = min(columns or len(panels), len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 4 * rows + 0.25 * (-(-len(labels) // 4) + 1)),
                                squeeze=False)  # fmt: skip
    for axis in axes.flat[len(panels) :]:
        axis.set_visible(False)
    for axis, (name, panel) in zip(axes.flat, panels.items()):
        written = set(panel.points) if label == "all" else frontier(panel.points)
        for point, (x, y) in panel.points.items():
            colour, marker = style[point]
            axis.scatter([x], [y], s=24, color=colour, marker=marker)
            if point in written:
                axis.annotate(point, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        if panel.reference is not None:
            axis.axhline(panel.reference, linestyle="--", color="grey")
            if panel.reference_label:
                axis.annotate(panel.reference_label, (0.01, panel.reference), xycoords=("axes fraction", "data"),
                              fontsize=6, color="grey", xytext=(0, 2), textcoords="offset points")  # fmt: skip
        if panel.baseline is not None:
            axis.axhline(panel.baseline, linestyle=":", color="black", linewidth=0.8)
        if logx:
            axis.set_xscale("log")
        axis.set_title(name, fontsize=10)
        axis.set_xlabel(xlabel)
        axis.set_ylabel(panel.ylabel)
        axis.grid(alpha=0.3)
    handles = [plt.Line2D([], [], linestyle="", marker=style[n][1], color=style[n][0], label=n) for n in labels]
    figure.legend(handles=handles, loc="lower center", ncol=min(4, len(labels)), fontsize=7, frameon=False)
    legend_height = 0.25 * (-(-len(labels) // 4) + 1) / figure.get_figheight()
    return _save(figure, path, title, bottom=legend_height)


def _save(figure, path: Path, title: str | None = None, bottom: float = 0.0) -> Path:
    """Title, lay out (leaving the ``bottom`` share of the height free, e.g. for a legend) and write a figure as a
    PNG (creating its folder), then free it."""
    import matplotlib.pyplot as plt

    if title is not None:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout(rect=(0, bottom, 1, 1))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)
