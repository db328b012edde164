"""Sensitivity to the strength: validation and test final accuracy against every value of a
method's final grid (mean and 95 % CI over seeds), each curve's peak, and whether AlphaMAS's
curve is MAS's shifted along the strength (a matter of scaling) or peaks lower or higher (a
matter of the method)."""
from __future__ import annotations

import math
from typing import Any

from alpha_mas_avalanche.experiment.methods import baseline_method, family_of, with_role
from alpha_mas_avalanche.experiment.report.statistics import mean_std_ci

#: the curves read against MAS's: the registry's deciding methods of the AlphaMAS family
AGAINST_MAS = tuple(m for m in with_role("deciding") if family_of(m) == "alpha_mas")


def curves(chosen: dict[str, dict], valid: list[dict], test: list[dict],
           methods: list[str]) -> dict[str, dict[str, Any]]:
    """Per method of ``methods`` with a final grid in ``chosen`` (one parameter): ``param``,
    ``values`` (the grid), ``chosen`` and per stream (``valid``, ``test``) one
    :func:`mean_std_ci` per value over the records of that value (validation-grid records,
    test records). A value where any seed's training diverged has no statistics (as in the
    grid's choice, the strength is unusable); ``diverged[stream]`` counts those seeds."""
    out = {}
    for method in methods:
        if method not in chosen or len(chosen[method]["grid"]) != 1:
            continue
        (param, values), = chosen[method]["grid"].items()
        entry: dict[str, Any] = {"param": param, "values": list(values),
                                 "chosen": chosen[method]["chosen"][param], "diverged": {}}
        for stream, records in (("valid", valid), ("test", test)):
            by_value: dict[float, list[float]] = {}
            diverged: dict[float, int] = {}
            for r in records:
                if r["method"] != method:
                    continue
                value = float(r["params"][param])
                if r.get("diverged"):
                    diverged[value] = diverged.get(value, 0) + 1
                elif r.get("final_avg_acc") is not None:
                    by_value.setdefault(value, []).append(r["final_avg_acc"])
            counts = [diverged.get(float(v), 0) for v in values]
            entry[stream] = [mean_std_ci([] if lost else by_value.get(float(v), []))
                             for v, lost in zip(values, counts)]
            entry["diverged"][stream] = counts
        out[method] = entry
    return out


def peak(curve: dict[str, Any], stream: str) -> dict[str, Any] | None:
    """The value with the highest mean on ``stream`` and its statistics (None if empty)."""
    points = [(stat["mean"], value, stat) for value, stat in zip(curve["values"], curve[stream])
              if stat["mean"] is not None]
    if not points:
        return None
    mean, value, stat = max(points, key=lambda p: p[0])
    return {"value": value, **stat}


def is_flat(curve: dict[str, Any], stream: str) -> bool:
    """No value of the curve stands apart from its peak: it has two or more values, and
    every value's 95 % interval reaches the peak's (so where the peak sits is noise)."""
    top = peak(curve, stream)
    points = [s for s in curve[stream] if s["mean"] is not None]
    if top is None or len(points) < 2 or any(s["ci95"] is None for s in points):
        return False
    return all(s["mean"] + s["ci95"] >= top["mean"] - top["ci95"] for s in points)


def compare_peaks(sensitivity: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each of :data:`AGAINST_MAS` against MAS: the shift of its test peak in decades, the
    peaks' heights and the reading: "flat" (neither test curve responds to the strength,
    :func:`is_flat`), "scaling" (the peaks' 95 % intervals overlap: the curve moved along
    the strength) or "method" (one peak is higher beyond the intervals)."""
    if baseline_method() not in sensitivity:
        return []
    out = []
    base = peak(sensitivity[baseline_method()], "test")
    base_flat = is_flat(sensitivity[baseline_method()], "test")
    for method in AGAINST_MAS:
        if method not in sensitivity or base is None:
            continue
        ours = peak(sensitivity[method], "test")
        if ours is None:
            continue
        difference = ours["mean"] - base["mean"]
        width = sum(x["ci95"] if x["ci95"] is not None else math.inf for x in (ours, base))
        reading = "scaling" if abs(difference) <= width else "method"
        if base_flat and is_flat(sensitivity[method], "test"):
            reading = "flat"
        out.append({"method": method, "peak": ours["value"], "mas_peak": base["value"],
                    "shift_decades": math.log10(ours["value"] / base["value"]),
                    "height": ours["mean"], "mas_height": base["mean"],
                    "height_difference": difference, "n": min(ours["n"], base["n"]),
                    "reading": reading})
    return out


def reading_text(c: dict[str, Any]) -> str:
    """What a peak comparison says, in words: flat curves, the same peak, MAS's curve moved
    along λ (a matter of scaling) or a different peak (a matter of the method)."""
    if c["reading"] == "flat":
        return ("neither curve's peak stands out (every value's 95 % interval reaches its "
                "peak's), so at these seeds the peaks' places tell neither scaling nor method")
    if c["reading"] == "method":
        return ("a different peak (a matter of the method: the peaks' 95 % intervals do not "
                "overlap)")
    if abs(c["shift_decades"]) < 1 / 6:
        return "the same peak as MAS's, at the same λ, within the peaks' 95 % intervals"
    return ("MAS's curve moved along λ (a matter of scaling: the peaks' 95 % intervals "
            "overlap)")


def markdown_lines(comparisons: list[dict[str, Any]], labels: dict[str, str]) -> list[str]:
    """The peaks' comparison as sentences under a heading."""
    if not comparisons:
        return []
    lines = ["", "**Sensitivity to the strength: test peaks** (figure `sensitivity`)", ""]
    for c in comparisons:
        reading = reading_text(c)
        lines.append(f"- {labels.get(c['method'], c['method'])}: peak {100 * c['height']:.2f} % at "
                     f"λ = {c['peak']:.4g}, MAS {100 * c['mas_height']:.2f} % at λ = "
                     f"{c['mas_peak']:.4g} ({c['shift_decades']:+.2f} decades, "
                     f"{100 * c['height_difference']:+.2f} pp, {c['n']} seeds): {reading}.")
    return lines
