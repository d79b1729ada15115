"""The dashboard's look, defined once: type sizes, the colour-blind-safe palette and what each colour means.

Every figure (pages, the HTML report, the slide deck) takes its sizes and colours from here, so a
figure reads from the back of a meeting room and a colour means one thing across the dashboard.

The palette is Okabe & Ito's (2008), distinguishable under the common colour-vision deficiencies.
Each *family* below maps a meaning to one of its colours; inside a family no colour is used twice,
and the families that meet on one figure never share a colour for different things.
"""

from __future__ import annotations

from typing import Any

#: Okabe–Ito colours by name.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
GREY = "#6B6B6B"  # references (chance, goals): never a measured thing

#: Body text of every figure (px). Titles are larger; nothing is drawn below :data:`MIN_FONT_SIZE`.
FONT_SIZE = 18
TITLE_FONT_SIZE = 22
#: The smallest text any figure or table cell may carry (px at 100 % zoom): legible from a meeting room's back row.
MIN_FONT_SIZE = 14
#: Legends, annotations and heatmap cell numbers.
SMALL_FONT_SIZE = 16
FONT_FAMILY = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"

#: One colour per generator where several are drawn together (Compare, trade-offs, slides), in order.
GENERATOR_SEQUENCE = [
    OKABE_ITO["blue"],
    OKABE_ITO["orange"],
    OKABE_ITO["bluish_green"],
    OKABE_ITO["reddish_purple"],
    OKABE_ITO["sky_blue"],
    OKABE_ITO["vermillion"],
    OKABE_ITO["black"],
    OKABE_ITO["yellow"],
]

#: Spine regions: (real, synthetic) — synthetic the full colour, real the same hue drawn open and lighter.
REGION_COLOURS = {
    "C": OKABE_ITO["sky_blue"],
    "T": OKABE_ITO["bluish_green"],
    "L": OKABE_ITO["orange"],
    "S": OKABE_ITO["reddish_purple"],
}

#: Real vs synthetic, where a figure colours by source only.
SOURCE_COLOURS = {"real": OKABE_ITO["black"], "synthetic": OKABE_ITO["orange"]}

#: Membership: the patients a generator saw vs those it did not.
MEMBER_COLOURS = {"train (members)": OKABE_ITO["vermillion"], "holdout (non-members)": OKABE_ITO["blue"]}

#: The three utility settings.
SETTING_COLOURS = {"trtr": GREY, "tstr": OKABE_ITO["blue"], "trts": OKABE_ITO["reddish_purple"]}

#: The membership attacks.
ATTACK_COLOURS = {
    "pairwise": OKABE_ITO["blue"],
    "distribution": OKABE_ITO["orange"],
    "domias": OKABE_ITO["bluish_green"],
    "discriminator": OKABE_ITO["vermillion"],
}

#: Verdict levels (backgrounds of verdict boxes and slide badges): the only red/green pair in the project.
VERDICT_COLOURS = {
    "leak": OKABE_ITO["vermillion"],
    "caution": OKABE_ITO["orange"],
    "ok": OKABE_ITO["bluish_green"],
    "unknown": GREY,
    "not_applicable": GREY,
}

#: Continuous scale for shares (confusion matrices): white to Okabe–Ito blue.
SHARE_SCALE = [[0.0, "#FFFFFF"], [1.0, OKABE_ITO["blue"]]]


def generator_colour(i: int) -> str:
    """The colour of the ``i``-th generator drawn on one figure."""
    return GENERATOR_SEQUENCE[i % len(GENERATOR_SEQUENCE)]


def plot_config(filename: str = "synthvu-figure") -> dict[str, Any]:
    """Plotly ``config`` for every chart (pages, HTML report, slides; the one place it is set): the modebar's
    camera downloads a print-resolution PNG (3 × the on-screen size); :func:`svg_config` downloads SVG instead.

    plotly.js draws the image from the figure as shown, so it carries the figure's own type: every builder
    sets :data:`FONT_FAMILY` at the sizes above (the modebar has no font option of its own)."""
    return {
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 3},
    }


def svg_config(filename: str = "synthvu-figure") -> dict[str, Any]:
    """As :func:`plot_config`, the camera downloading SVG (vector, any print size)."""
    cfg = plot_config(filename)
    cfg["toImageButtonOptions"] = {"format": "svg", "filename": filename}
    return cfg


def text_colour_on(hex_colour: str) -> str:
    """Black or white, whichever reads on ``hex_colour`` (WCAG relative luminance)."""
    r, g, b = (int(hex_colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4))

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    lum = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
    return "#000000" if lum > 0.179 else "#FFFFFF"
