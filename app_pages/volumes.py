"""Volumes: one generated sub-volume (or VU) in three orthogonal planes, a slider per plane; a sub-volume generator's
saved evaluation (``report/volume_report.json``) below."""

import streamlit as st

from dashboard import frame, loaders, volumes


def planes_view(model: str, stamp: float, position: str | None, seed: int, spacing: tuple, shape: tuple) -> None:
    """The three planes and their sliders, drawn in the browser: the unit (from the sample cache) is sent once and
    each slider redraws its plane there, without a server round trip."""
    import streamlit.components.v1 as components

    images, _, _ = loaders.samples(model, stamp, 1, position, seed)
    components.html(volumes.viewer_html(images[0], spacing), height=volumes.viewer_height(shape, spacing))


def render(sel: frame.Selection) -> None:
    model, stamp = str(sel.path), loaders.weights_stamp(sel.path)
    d, h, w = sel.shape
    spacing = volumes.unit_spacing(sel.card)
    kind = "sub-volume" if (sel.card.get("architecture") or {}).get("spatial_dims") == 3 else "VU (its slices as depth)"
    st.caption(f"{frame.plain(sel.name)}: one generated {kind} of {d} × {h} × {w} voxels "
               f"({volumes.spacing_text(sel.card, spacing)}). Sagittal: superior up, anterior left; coronal: "
               "superior up, the patient's left on the left; axial: anterior up.")
    cols = st.columns([2, 1])
    position = cols[0].selectbox("Position", sel.classes, key="vol_position")
    seed = cols[1].number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="vol_seed")
    planes_view(model, stamp, position, int(seed), spacing, (d, h, w))
    if (sel.card.get("architecture") or {}).get("spatial_dims") == 3:
        report_view(sel)


def report_view(sel: frame.Selection) -> None:
    """A sub-volume generator's saved evaluation (``report/volume_report.json``), as ``report show`` prints it."""
    st.subheader("Evaluation (sub-volume report)")
    lines = volumes.volume_report_lines(sel.path, sel.card)
    if lines is None:
        st.info("No sub-volume report yet: compute it with `python -m synthvu_core evaluate MODEL`.")
        return
    st.markdown("\n".join(f"- {frame.plain(line)}" for line in lines))


frame.run_page("Volumes", render)
