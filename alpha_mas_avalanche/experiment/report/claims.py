"""The write-up's seed claims (AlphaMAS against MAS), read from the page's verdicts: confirmed,
contradicted or not confirmed after Holm's adjustment."""
from __future__ import annotations

from alpha_mas_avalanche.experiment.methods import family_of

#: the write-up's claim on forgetting: AlphaMAS lowers both of these
FORGETTING_CLAIM = ("avg_forgetting_avalanche", "max_forgetting_avalanche")


def claim_verdict(comparisons: list[dict]) -> str:
    """"confirmed" when every comparison's verdict is "better", "contradicted" when any is
    "worse", else "not confirmed"."""
    verdicts = [c["verdict"] for c in comparisons]
    if "worse" in verdicts:
        return "contradicted"
    if verdicts and all(v == "better" for v in verdicts):
        return "confirmed"
    return "not confirmed"


def comparisons_by_label(comparisons: list[dict]) -> dict[str, dict[str, dict]]:
    """``{label: {metric: comparison}}``."""
    out: dict[str, dict[str, dict]] = {}
    for c in comparisons:
        out.setdefault(c["label"], {})[c["metric"]] = c
    return out


def _seeds(n: int) -> str:
    return f"{n} seed{'' if n == 1 else 's'}"


def p_text(p: float | None) -> str:
    """A p-value to three decimals, "<0.001" below, "n/a" for None."""
    return "n/a" if p is None else "<0.001" if p < 0.001 else f"{p:.3f}"


def _difference(c: dict) -> str:
    return (f"{100 * c['mean_difference']:+.2f} pp, p = {p_text(c['p_value'])}, "
            f"Holm p = {p_text(c['p_holm'])}")


def seed_claims(paired: list[dict], spread: list[dict], labels: list[str]) -> list[str]:
    """One sentence per AlphaMAS row (in ``labels``' order) and claim of the write-up: (1)
    lower average and maximum forgetting (accuracy right after training minus final) than
    MAS; (2) less spread over placements; confirmed / not confirmed / contradicted."""
    sentences = []
    by_label = comparisons_by_label(paired)
    for label in [lb for lb in labels if lb in by_label]:
        metrics = by_label[label]
        pair = [metrics[m] for m in FORGETTING_CLAIM
                if m in metrics and metrics[m]["mean_difference"] is not None]
        if len(pair) < 2 or family_of(pair[0]["method"]) != "alpha_mas":
            continue
        sentences.append(
            f"{label} has lower average and maximum forgetting than {pair[0]['baseline']}: "
            f"**{claim_verdict(pair)}** (average {_difference(pair[0])}; maximum "
            f"{_difference(pair[1])}; {_seeds(pair[0]['n_seeds'])}).")
    rank = {lb: i for i, lb in enumerate(labels)}
    for c in sorted(spread, key=lambda c: rank.get(c["label"], len(rank))):
        if c["mean_difference"] is None or family_of(c["method"]) != "alpha_mas":
            continue
        sentences.append(
            f"{c['label']} has less spread over placements than {c['baseline']}: "
            f"**{claim_verdict([c])}** (the moved task's final-accuracy spread "
            f"{100 * c['label_mean']:.2f} against {100 * c['baseline_mean']:.2f} pp, "
            f"difference {_difference(c)}; {_seeds(c['n_seeds'])}).")
    return sentences
