"""How the figures look and what their error bars are: each method's colour, marker and line
style from its registry entry (AlphaMAS a warm hue family, related baselines two shades of one
hue, bounds grey), the error bar of a mean over seeds, and the words that name it in titles
and legends."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from alpha_mas_avalanche.data.names import LONG_STREAMS
from alpha_mas_avalanche.experiment.methods import REGISTRY

#: The part of a colormap that the rows of the entries naming it share (pale ends left out)
RAMP = (0.4, 0.95)


def style_of(method: str, key: str, default: str) -> str:
    """Field ``key`` (colour, marker, linestyle) of registry method ``method``'s entry;
    ``default`` for a method not registered."""
    entry = REGISTRY.get(method)
    return default if entry is None else getattr(entry, key)


def method_colours(methods: dict[str, str]) -> dict[str, tuple]:
    """``{label: RGB(A)}`` for ``{label: registry method}`` (in table order), all distinct:
    the colour of the row's registry entry; the rows of entries naming a colormap spread over
    its :data:`RAMP` in table order; a spare colour where the entry has none or its colour is
    taken (a second row of one entry)."""
    import matplotlib

    ramps: dict[str, list[str]] = {}
    for label, method in methods.items():
        if style_of(method, "colour", "") in matplotlib.colormaps:
            ramps.setdefault(style_of(method, "colour", ""), []).append(label)
    colours: dict[str, tuple] = {}
    for name, labels in ramps.items():
        shades = matplotlib.colormaps[name](np.linspace(*RAMP, max(len(labels), 1)))
        colours |= {label: tuple(shade) for label, shade in zip(labels, shades)}
    tab20 = matplotlib.colormaps["tab20"].colors
    spare = [tab20[i] for i in (11, 13, 17, 19, 15)] + list(matplotlib.colormaps["Dark2"].colors)
    taken = {matplotlib.colors.to_rgb(c) for c in colours.values()}
    for label, method in methods.items():
        if label in colours:
            continue
        own = style_of(method, "colour", "")
        colour = matplotlib.colors.to_rgb(own) if own else None
        if colour is None or colour in taken:
            colour = next(c for c in spare if matplotlib.colors.to_rgb(c) not in taken)
        colours[label] = colour
        taken.add(matplotlib.colors.to_rgb(colour))
    return colours


def method_marker(method: str) -> str:
    """The marker of registry method ``method`` (``"o"`` for one not registered)."""
    return style_of(method, "marker", "o")


def method_linestyle(method: str) -> str:
    """The line style of registry method ``method`` (solid for one not registered)."""
    return style_of(method, "linestyle", "-")


def task_axis_name(benchmark: str) -> str:
    """What sets the tasks of benchmark key ``benchmark`` apart, for an axis: their classes,
    or on the long streams their pixel permutation or rotation angle."""
    if benchmark in LONG_STREAMS:
        return "task (rotation angle)" if benchmark.startswith("rotated") else "task (pixel permutation)"
    return "task (classes)"


def error_of(stat: dict[str, Any]) -> float:
    """The error bar of a mean: its 95 % CI half-width for n >= 3, one std for n = 2, NaN
    (matplotlib draws no bar, no cap) for one seed or none."""
    value = stat.get("ci95") if stat.get("n", 0) >= 3 else stat.get("std")
    return float("nan") if value is None or stat.get("n", 0) < 2 else float(value)


def errors_of(series: dict[str, Any]) -> Any:
    """The error bars of a ``{"ci95", "std", "n"}`` series (lists or nested lists), as
    :func:`error_of` chooses them; NaN (nothing drawn) where missing or n < 2."""
    errors = np.array(series["ci95"] if series["n"] >= 3 else series["std"], dtype=float)
    return errors if series["n"] >= 2 else np.full_like(errors, np.nan)  # None -> NaN


def error_text(n: int, most: int | None = None) -> str:
    """What the error bars are for rows of ``n`` seeds (``n``-``most`` when rows differ: the
    deciding rows' extra seeds, or a partial grid; each row's bar follows its own n)."""
    if most is not None and most != n:
        bars = "mean ± 95 % CI" + (" where n ≥ 3, ± 1 std where n = 2, no bar where n = 1"
                                  if n < 3 else "")
        return f"{n}-{most} seeds per row: {bars}"
    if n >= 3:
        return f"mean ± 95 % CI over n = {n} seeds"
    if n == 2:
        return "mean ± 1 std over n = 2 seeds (a 95 % CI needs n ≥ 3)"
    return "n = 1 seed (no error bars)"


def seeds_text(n: int, most: int | None = None) -> str:
    """``n = 5 seeds``, or ``n = 5-10 seeds per row`` where rows ran different numbers."""
    if most is not None and most != n:
        return f"n = {n}-{most} seeds per row"
    return f"n = {n} seed" + ("s" if n != 1 else "")


def legend_error_text(n: int, most: int | None = None) -> str:
    """The error bar in a legend's words: which statistic, over how many seeds."""
    if most is not None and most != n:
        bars = "± 95 % CI" + (" (n ≥ 3) or ± 1 std (n = 2)" if n < 3 else "")
        return f"{bars}; {seeds_text(n, most)}"
    bars = "± 95 % CI" if n >= 3 else "± 1 std" if n == 2 else None
    return f"{bars}, {seeds_text(n)}" if bars else f"{seeds_text(n)}, no error bar"


def consecutive_runs(positions: list[int]) -> list[list[int]]:
    """``[1, 2, 5]`` -> ``[[1, 2], [5]]``: the stretches of neighbouring positions."""
    runs: list[list[int]] = []
    for p in sorted(positions):
        if runs and p == runs[-1][-1] + 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


#: A colormap of at most this many steps, shown by an image of the figure (a heatmap), keeps
#: each step as a palette entry of its own in the PNG; longer ones are fitted like any colour
KEPT_COLORMAP_STEPS = 128


def save_png_and_pdf(figure: Any, stem: Path, **savefig: Any) -> list[Path]:
    """Save ``figure`` as ``stem``.pdf (vector, no creation date) and ``stem``.png in a
    256-colour palette without dithering: plots of a few flat colours look the same, at a
    third of an RGBA PNG's size. The steps of a heatmap's colormap (at most
    :data:`KEPT_COLORMAP_STEPS`) are palette entries of their own, so its colour bar shows no
    bands; the other entries are fitted to the image."""
    from PIL import Image

    pdf, png = stem.with_suffix(".pdf"), stem.with_suffix(".png")
    figure.savefig(pdf, metadata={"CreationDate": None}, **savefig)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", **savefig)
    image = Image.open(buffer).convert("RGB")
    rgb = np.asarray(image, dtype=np.int32)
    kept = _colormap_steps(figure)
    fitted = image.quantize(256 - len(kept), dither=Image.Dither.NONE).getpalette()
    palette = np.concatenate([kept, np.asarray(fitted, dtype=np.int32).reshape(-1, 3)])[:256]
    # each colour of the image to its nearest palette entry (the kept ones first on ties)
    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    unique, inverse = np.unique(codes, return_inverse=True)
    colours = np.stack([unique >> 16, (unique >> 8) & 255, unique & 255], axis=1)
    nearest = ((colours[:, None, :] - palette[None]) ** 2).sum(-1).argmin(1)
    indexed = Image.frombytes("P", image.size, nearest[inverse].astype(np.uint8).tobytes())
    indexed.putpalette(palette.astype(np.uint8).tobytes())
    indexed.save(png, optimize=True)
    return [png, pdf]


def _colormap_steps(figure: Any) -> np.ndarray:
    """The RGB bytes of every step of the short colormaps the figure's images use, once each
    in order of first use (an ``(n, 3)`` int32 array)."""
    cmaps = [shown.cmap for ax in figure.axes for shown in ax.get_images()
             if shown.cmap.N <= KEPT_COLORMAP_STEPS]
    steps = [tuple(rgb) for cmap in cmaps for rgb in cmap(np.arange(cmap.N), bytes=True)[:, :3].tolist()]
    return np.array(list(dict.fromkeys(steps)), dtype=np.int32).reshape(-1, 3)
