"""Names shared by the evaluation, the CLI and the dashboard, defined once (stdlib only, plain constants)."""

from __future__ import annotations

#: A generator's report folder and its files.
REPORT_DIR = "report"
REPORT_FILE = "report.json"
ARRAYS_FILE = "arrays.npz"
CONTROLS_DIR = "controls"

#: Membership attacks, in display order. Black-box attacks read only the released samples.
ATTACKS: tuple[str, ...] = ("pairwise", "distribution", "domias", "discriminator")
BLACK_BOX_ATTACKS: tuple[str, ...] = ("pairwise", "distribution", "domias")
WHITE_BOX_ATTACKS: tuple[str, ...] = ("discriminator",)
#: Attack spaces. ``embedding`` and ``umap`` are fitted on reference patients only.
SPACES: tuple[str, ...] = ("pixel", "embedding", "umap")
#: The pre-specified primary attack of the released-samples verdict (the study's pairwise pixel attack).
PRIMARY_ATTACK = ("pairwise", "pixel")

#: Utility settings.
UTILITY_SETTINGS: tuple[str, ...] = ("trtr", "tstr", "trts")

#: Threat models, each with its own verdict.
THREAT_MODELS: tuple[str, ...] = ("released_samples", "released_discriminator")

#: Controls: graded positive controls (fraction of member copies mixed in) and the negative control.
GRADED_FRACTIONS: tuple[float, ...] = (0.01, 0.05, 0.2)
POWER_FRACTION = 0.05  # an attack counts in a verdict only where it detects this mixture
INDEPENDENT_CONTROL = "independent"


def graded_control(fraction: float) -> str:
    """Name of the graded positive control with ``fraction`` of member copies: ``graded_5pct``."""
    pct = fraction * 100
    return f"graded_{pct:g}pct".replace(".", "p")


GRADED_CONTROLS: tuple[str, ...] = tuple(graded_control(f) for f in GRADED_FRACTIONS)
CONTROLS: tuple[str, ...] = (*GRADED_CONTROLS, INDEPENDENT_CONTROL)
