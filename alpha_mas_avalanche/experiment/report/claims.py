"""The seed claims (AlphaMAS against MAS): confirmed, contradicted or not confirmed at p < 0.05."""
from __future__ import annotations


#: significance level of the seed claims' verdicts
CLAIM_ALPHA = 0.05


def verdict(comparisons: list[dict]) -> str:
    """"confirmed" when every difference is negative (AlphaMAS lower) at p < CLAIM_ALPHA,
    "contradicted" when any is positive at p < CLAIM_ALPHA, else "not confirmed"."""
    def significant(c: dict) -> bool:
        return c["p_value"] is not None and c["p_value"] < CLAIM_ALPHA

    if any(significant(c) and c["mean_difference"] > 0 for c in comparisons):
        return "contradicted"
    if comparisons and all(significant(c) and c["mean_difference"] < 0 for c in comparisons):
        return "confirmed"
    return "not confirmed"


def comparisons_by_label(comparisons: list[dict]) -> dict[str, dict[str, dict]]:
    """``{AlphaMAS label: {metric: comparison}}``."""
    out: dict[str, dict[str, dict]] = {}
    for c in comparisons:
        out.setdefault(c["alpha_mas"], {})[c["metric"]] = c
    return out


def _seeds(n: int) -> str:
    return f"{n} seed{'' if n == 1 else 's'}"


def p_text(c: dict) -> str:
    return "n/a" if c["p_value"] is None else f"{c['p_value']:.3f}"


def _difference(c: dict) -> str:
    return f"{100 * c['mean_difference']:+.2f} pp, p = {p_text(c)}"


def seed_claims(paired: list[dict], spread: list[dict], labels: list[str]) -> list[str]:
    """One sentence per AlphaMAS row (in ``labels``' order) and claim: (1) lower average and
    maximum forgetting than MAS; (2) less spread over placements; confirmed / not confirmed /
    contradicted."""
    sentences = []
    by_label = comparisons_by_label(paired)
    for label in [lb for lb in labels if lb in by_label]:
        metrics = by_label[label]
        pair = [metrics[m] for m in ("avg_forgetting_ref", "max_forgetting_ref")
                if m in metrics and metrics[m]["mean_difference"] is not None]
        if len(pair) < 2:
            continue
        sentences.append(
            f"{label} has lower average and maximum forgetting than {pair[0]['baseline']}: "
            f"**{verdict(pair)}** (average {_difference(pair[0])}; maximum "
            f"{_difference(pair[1])}; {_seeds(pair[0]['n_seeds'])}).")
    rank = {lb: i for i, lb in enumerate(labels)}
    for c in sorted(spread, key=lambda c: rank.get(c["alpha_mas"], len(rank))):
        if c["mean_difference"] is None:
            continue
        sentences.append(
            f"{c['alpha_mas']} has less spread over placements than {c['baseline']}: "
            f"**{verdict([c])}** (the moved task's final-accuracy spread "
            f"{100 * c['alpha_mas_mean']:.2f} against {100 * c['baseline_mean']:.2f} pp, "
            f"difference {_difference(c)}; {_seeds(c['n_seeds'])}).")
    return sentences
