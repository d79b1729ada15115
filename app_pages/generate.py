"""Generate: synthetic VUs for a chosen position, a latent walk between two positions, downloads."""

import streamlit as st

from dashboard import frame, loaders
from synthvu_core import levels
from synthvu_core.errors import SynthVUError

ANY = "any (training mix)"
FORMATS = {"NIfTI + positions CSV (.zip)": ".zip", "PNG montage (.png)": ".png", "NumPy (.npz)": ".npz"}


def position_options(sel: frame.Selection) -> list[str]:
    """Positions a generator can be asked for: its classes, plus regions for a level generator."""
    classes = sel.classes
    if sel.card.get("scheme") == "level":
        regions = [r for r in levels.REGIONS if any(levels.region(c) == r for c in classes)]
        return classes + [f"{r} (any {levels.REGION_NAMES[r]} level)" for r in regions]
    return classes


def position_value(option: str) -> str | None:
    if option == ANY:
        return None
    return option.split(" ")[0]


def label_of(option: str) -> str:
    if option in levels.REGION_NAMES:
        return f"{option} ({levels.REGION_NAMES[option]})"
    return option


def samples_section(
    sel: frame.Selection, model: str, stamp: float, option: str, position: str | None, n: int, seed: int
) -> None:
    with st.spinner(f"Sampling {n} VUs at {label_of(option)} (seconds per hundred on a CPU)…", show_time=True):
        loaders.sample_montage(model, stamp, n, position, seed, (sel.shape[0] - 1) // 2)  # raises a bad request
    samples_view(sel, model, stamp, option, position, n, seed)

    st.subheader("Download")
    cols = st.columns(len(FORMATS))
    for col, (label, suffix) in zip(cols, FORMATS.items()):
        col.download_button(
            label,
            data=lambda suffix=suffix: loaders.export_bytes(model, stamp, n, position, seed, suffix),
            file_name=f"{sel.name}-{(position or 'mix').replace('/', '-')}-n{n}-seed{seed}{suffix}",
            mime="application/octet-stream",
            key=f"download_{suffix}",
        )


@frame.fragment
def samples_view(
    sel: frame.Selection, model: str, stamp: float, option: str, position: str | None, n: int, seed: int
) -> None:
    """Layout and slice of the drawn VUs: a change reruns this part only, and each picture is cached."""
    c_slices = sel.shape[0]
    layout = st.radio(
        "Layout",
        ["one slice of every VU", "every slice, one VU per row (the study's layout)"],
        horizontal=True,
        key="gen_layout",
    )
    if layout.startswith("one slice"):
        k = (
            st.slider(
                "Slice",
                1,
                c_slices,
                (c_slices + 1) // 2,
                key="gen_slice",
                help="Parasagittal slice; the middle one is the mid-sagittal plane of the vertebra.",
            )
            - 1
        )
        png, counts = loaders.sample_montage(model, stamp, n, position, seed, k)
        caption = (
            f"{n} VUs at {label_of(option)}, seed {seed}, slice {k + 1} of {c_slices}; "
            "each row labelled with its position"
        )
    else:
        png, counts = loaders.sample_montage(model, stamp, n, position, seed, None)
        caption = (
            f"{min(n, 16)} of {n} VUs at {label_of(option)}, seed {seed}: slices left to right, "
            "each row labelled with its position"
        )
    frame.show_image(png, caption, width="stretch" if n >= 8 else "content")
    st.caption("Positions drawn: " + ", ".join(f"{k} × {v}" for k, v in counts.items()))


@frame.fragment
def interpolation_section(sel: frame.Selection, model: str, stamp: float) -> None:
    """A walk between two positions; changing its controls reruns this part only."""
    st.subheader("Latent interpolation")
    st.caption("A straight walk in noise and class-code space from one position to another (one slice shown).")
    opts = position_options(sel)
    cols = st.columns([2, 2, 1, 1])
    start = cols[0].selectbox("From", opts, index=0, format_func=label_of, key="interp_from")
    end = cols[1].selectbox(
        "To",
        opts,
        index=len(opts) - 1 if sel.card.get("scheme") != "level" else len(sel.classes) - 1,
        format_func=label_of,
        key="interp_to",
    )
    steps = cols[2].number_input("Steps", min_value=2, max_value=16, value=8, key="interp_steps")
    iseed = cols[3].number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, key="interp_seed")
    png = loaders.interpolation_strip(model, stamp, position_value(start), position_value(end), int(steps), int(iseed))
    k_mid = sel.shape[0] // 2
    frame.show_image(png, f"{label_of(start)} → {label_of(end)}, {steps} steps, slice {k_mid + 1}", width="stretch")


def render(sel: frame.Selection) -> None:
    model, stamp = str(sel.path), loaders.weights_stamp(sel.path)
    c_slices = sel.shape[0]
    st.caption(
        f"{frame.plain(sel.name)}: a {sel.card.get('scheme')} generator of "
        f"{c_slices} × {sel.shape[1]} × {sel.shape[2]} VUs."
    )

    with st.form("generate"):
        cols = st.columns([2, 1, 1])
        frame.url_state("gen_position", "position", [ANY, *position_options(sel)])
        option = cols[0].selectbox("Position", [ANY, *position_options(sel)], format_func=label_of, key="gen_position")
        frame.url_state("gen_count", "n", range(0, loaders.MAX_SAMPLES + 1))
        n = cols[1].number_input("Count", min_value=0, max_value=loaders.MAX_SAMPLES, value=16, step=1, key="gen_count")
        frame.url_state("gen_seed", "seed", range(0, 2**31))
        seed = cols[2].number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="gen_seed")
        st.form_submit_button("Generate", type="primary")
    position = position_value(option)
    try:
        samples_section(sel, model, stamp, option, position, int(n), int(seed))
    except SynthVUError as e:  # a bad request (zero samples, unknown position) leaves the rest of the page usable
        st.error(frame.say(e))

    interpolation_section(sel, model, stamp)


frame.run_page("Generate", render)
