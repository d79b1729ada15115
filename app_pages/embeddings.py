"""Embeddings: the UMAP overlay of real and synthetic VUs; select points to see their images."""

import numpy as np
import streamlit as st

from dashboard import frame, loaders, style
from dashboard.figures import umap_figure
from dashboard.images import montage
from dashboard.summary import fmt
from synthvu_core.records import attack_key, fidelity_key

MAX_SHOWN = 24
FIDELITY = [("frechet_distance", "Fréchet distance"), ("precision", "Precision"), ("recall", "Recall"),
            ("density", "Density"), ("coverage", "Coverage")]


def render(sel: frame.Selection) -> None:
    rep = sel.report
    cols = st.columns(len(FIDELITY))
    for col, (key, label) in zip(cols, FIDELITY):
        col.metric(label, fmt(rep.scalar(fidelity_key(key))), help=rep.definitions.get(fidelity_key(key)))
    if not rep.has("umap/synthetic"):
        why = rep.meta.get("missing", {}).get(attack_key("pairwise", "umap")) or "the report holds no UMAP coordinates"
        st.info(f"No UMAP overlay for this report: {why}.")
        return
    picked = _overlay(sel)
    if not picked["synthetic"] and not picked["real"]:
        st.info("Select points on the chart (box or lasso) to see the VUs below.")
        return
    if picked["synthetic"]:
        _selected_synthetic(sel, picked["synthetic"])
    if picked["real"]:
        _selected_real(sel, picked["real"])


def _overlay(sel: frame.Selection) -> dict[str, list[int]]:
    """The UMAP overlay with its controls; the rows selected on it (from the chart, or the link), per kind."""
    rep = sel.report
    c1, c2 = st.columns([1, 2])
    colours = {"position": "position (light = real, dark = synthetic)", "source": "real vs synthetic"}
    colour_by = frame.url_radio(c1, "Colour by", colours, "umap_colour", "colour")
    frame.url_state("umap_real_on_top", "real_on_top", cast=bool)
    on_top = c2.toggle(
        "Real VUs on top",
        value=True,
        key="umap_real_on_top",
        help="Draw the real VUs (fewer than the synthetic ones) over the synthetic points.",
    )
    if sel.public:
        c2.caption(
            "Public mode: real VUs are drawn as a density (dark contour lines) only; select synthetic points to see "
            "them."
        )
    fig, sources = umap_figure(rep, sel.classes, colour_by=colour_by, real_as_density=sel.public, real_on_top=on_top)
    umap_meta = rep.meta.get("umap", {})
    st.caption(
        f"UMAP (n_neighbors={umap_meta.get('n_neighbors', '?')}, min_dist={umap_meta.get('min_dist', '?')}) fitted on "
        f"{umap_meta.get('fitted_on', 'real training VUs').replace('_', ' ')}; synthetic VUs projected in. "
        "Drag a box or lasso to select VUs."
    )
    event = st.plotly_chart(
        fig,
        on_select="rerun",
        selection_mode=("box", "lasso"),
        width="stretch",
        config=style.plot_config("synthvu-umap"),
        key=frame.key_of(sel, f"umap_chart_{colour_by}"),
    )
    from dashboard.figures import selected_rows

    picked = selected_rows(list(event.selection.points) if event and event.selection else [], sources)
    sizes = {kind: len(a) if (a := rep.array(f"umap/{kind}_index")) is not None else 0 for kind in picked}
    return frame.url_rows("picked", picked, sizes=sizes)  # a link's rows outside the report are ignored


def _selected_synthetic(sel: frame.Selection, syn: list[int]) -> None:
    """The selected synthetic VUs, regenerated from the report's seed."""
    rep = sel.report
    st.subheader(
        "Selected synthetic VUs "
        f"({len(syn)}{', first ' + str(MAX_SHOWN) + ' shown' if len(syn) > MAX_SHOWN else ''})"
    )
    index = rep.array("umap/synthetic_index")
    rows = tuple(int(index[r]) for r in syn[:MAX_SHOWN])
    n_syn, seed = int(rep.meta.get("n_synthetic", len(index))), int(rep.meta.get("synthetic_seed", 0))
    images = loaders.synthetic_by_index(str(sel.path), loaders.weights_stamp(sel.path), n_syn, seed, rows)
    labels = rep.array("umap/synthetic_labels")
    names = ", ".join(sorted({sel.classes[int(labels[r])] for r in syn[:MAX_SHOWN]})) if labels is not None else ""
    frame.show_image(
        montage(images, slice_index=images.shape[1] // 2, ncols=8),
        f"{len(rows)} selected synthetic VUs ({names}), middle slice; regenerated with seed {seed}",
        width="stretch",
    )


def _selected_real(sel: frame.Selection, real: list[int]) -> None:
    """The selected real VUs (never in public mode)."""
    rep = sel.report
    st.subheader(f"Selected real VUs ({len(real)})")
    if sel.public:
        st.caption("Real VUs are not shown in public mode.")
        return
    index = rep.array("umap/real_index")
    rows = np.asarray([int(index[r]) for r in real[:MAX_SHOWN]])
    images = frame.real_vus(sel, rows, key="umap_real")
    if images is not None:
        frame.show_image(
            montage(images, slice_index=images.shape[1] // 2, ncols=8),
            f"{len(rows)} selected real VUs, middle slice",
            real=True,
            width="stretch",
        )


frame.run_page("Embeddings", render, needs_report=True)
