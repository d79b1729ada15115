"""Models & data: every generator's card, the dataset counts, and how to build your own."""


import streamlit as st

from dashboard import frame, loaders, style
from dashboard.summary import design_rows, epsilon_text, shareable_card, split_text
from synthvu_core.names import IMAGE_GLOB, LABEL_GLOB
from synthvu_core.records import epochs_text

COMMANDS = f"""\
# 1. cut VUs out of your NIfTI volumes (image + vertebral-body label map per patient); one folder per source
#    (scanner, site, sequence): intensities are harmonised between them (--sources FILE.csv names them instead)
python -m synthvu_core data build --images DIR1 DIR2 --out my-vus \\
    --image-glob '{IMAGE_GLOB}' --label-glob '{LABEL_GLOB}'      # --mapping '1=L1,2=L2' for other label codes
python -m synthvu_core data show my-vus      # counts per level and split; privacy already spent on its patients

# 2. fine-tune the shipped public prior acgan-phantom (600 steps, about 3.5 CPU-minutes; conditioned on the source
#    where there are two or more; --from-scratch to opt out, --target-epsilon 8 for DP-SGD on patients)
python -m synthvu_core train --dataset my-vus --out my-model --scheme level

# 3. measure utility, fidelity and privacy (writes my-model/report/), with the positive and negative controls
python -m synthvu_core evaluate my-model --dataset my-vus --controls

# 4. look at it here: add the folder in the sidebar, or
SYNTHVU_MODELS=path/to/folder-of-models python -m synthvu_core serve          # --public to share it
"""

PHANTOM = """\
python -m synthvu_core data build --phantom 120 --out phantom-vus   # the built-in spine phantom, no data needed
python -m synthvu_core train --dataset phantom-vus --out my-phantom-model
python -m synthvu_core evaluate my-phantom-model --controls
"""


def training_section(sel: frame.Selection) -> None:
    """Loss curves from the training log and the montages of synthetic VUs written during training."""
    import numpy as np

    from dashboard.figures import loss_figure, throughput_column

    st.subheader("Training record")
    tr = sel.card.get("training") or {}
    final = tr.get("final_losses") or {}
    st.caption(f"{tr.get('steps', '?')} steps, {epochs_text(tr.get('epochs'))} epochs, "
               f"batch {tr.get('batch_size', '?')}, "
               f"{tr.get('seconds', 0):.0f} s on {tr.get('device', '?')}"
               + ("; final losses " + ", ".join(f"{k} {v:.3f}" for k, v in final.items()) if final else ""))
    log, shots = loaders.training_record(sel.path)
    if log is None:
        st.info("No training log: this generator was trained before per-step logs were kept (`training/log.csv`); "
                "only its final losses are in the card.")
    else:
        fig = loss_figure(log)
        if fig is not None:
            st.plotly_chart(fig, width="stretch", config=style.plot_config(), key=frame.key_of(sel, "loss_curves"))
        else:
            st.caption(f"The training log has no loss columns (columns: {', '.join(log)}).")
        col = throughput_column(log)
        if col is not None:
            st.metric(f"Throughput (median {col})", f"{np.nanmedian(log[col]):.1f}")
    if not shots:
        st.caption("No training montages in this folder.")
        return
    steps = [s for s, _ in shots]
    step = steps[0] if len(steps) == 1 else st.select_slider(
        "Montage at step", steps, value=steps[-1], key=frame.key_of(sel, "montage_step"))
    frame.show_image(
        loaders.training_montage(dict(shots)[step], sel.classes, sel.shape),
        f"training montage at step {step} of {tr.get('steps', '?')} (one row per class, labelled)",
        width="stretch",
    )


def design_section(design: "loaders.GeneratorDesign", public: bool) -> None:
    """Each level's VUs and patients per part (and per source) as the generator was trained and is evaluated, and
    the warnings ``train`` printed for that split; public mode names no folder."""
    c = st.columns(5)
    c[0].metric("VUs", sum(d.vus for d in design.levels))
    c[1].metric("Training VUs", design.train_vus)
    c[2].metric("Training patients", design.patients.get("train", "—"))
    c[3].metric("Holdout patients", design.patients.get("holdout", "—"))
    c[4].metric("Levels", len(design.levels))
    st.dataframe(design_rows(design.levels), hide_index=True)
    where = "" if public else f" ({frame.plain(design.folder)})"
    st.caption("Patients per level: training patients under the split the generator was trained on; holdout and "
               f"reference patients as `evaluate` reads them{where}.")
    if not design.nested:
        st.warning("Some training patients of this generator are holdout patients of the dataset: `evaluate` refuses "
                   "it here; evaluate it on a dataset built with its split.", icon=":material/warning:")
    for line in design.warnings:
        st.warning(frame.plain_but_code(line.removeprefix("warning: ")), icon=":material/warning:")


def render(sel: frame.Selection | None) -> None:
    gens = frame.all_generators()
    st.subheader("Generators")
    if not gens:
        st.info("No generator found in the shipped `models/` folder or in `$SYNTHVU_MODELS`.")
    else:
        st.dataframe(
            [
                {
                    "name": g.name,
                    "source": g.source,
                    "architecture": g.card["architecture"].get("name"),
                    "scheme": g.card["scheme"],
                    "classes": ", ".join(g.card["classes"]),
                    "steps": g.card["training"].get("steps"),
                    "privacy": epsilon_text(g.card),
                    "report": "yes" if g.has_report else "no",
                    "dataset": g.card["dataset"].get("fingerprint"),
                    "folder": g.path.name if sel is not None and sel.public else str(g.path),
                }
                for g in gens
            ],
            hide_index=True,
            width="stretch",
        )
    if sel is not None:
        st.subheader(f"{frame.plain(sel.name)}: card")
        st.json(shareable_card(sel.card) if sel.public else sel.card, expanded=1)
        ds = sel.card.get("dataset") or {}
        st.subheader("Training data")
        recipe = ds.get("recipe") or {}
        if recipe:
            st.write(
                f"Built-in spine phantom **{frame.plain(recipe.get('name'))}**: "
                f"{frame.plain(recipe.get('n_patients'))} patients, seed {frame.plain(recipe.get('seed'))}, "
                f"{frame.plain(recipe.get('contrast'))} contrast; "
                f"patient split {frame.plain(split_text(ds.get('split')))}."
            )
        else:
            st.write(
                f"Your NIfTI data ({len(ds.get('sources', []))} source files); patient split "
                f"{split_text(ds.get('split'))}."
            )
        design = loaders.dataset_design(sel.card, sel.public)
        counts = None if design else loaders.cached_dataset_counts(sel.card)
        if design:
            design_section(design, sel.public)
        elif counts:
            c = st.columns(3)
            c[0].metric("VUs", counts.get("units", "—"))
            c[1].metric("Patients", counts.get("patients", "—"))
            c[2].metric("Training VUs", ds.get("n_train", "—"))
            split = counts.get("per_split", {})
            st.dataframe(
                [{"part": k, "patients": v.get("patients"), "VUs": v.get("units")} for k, v in split.items()],
                hide_index=True,
            )
            per_level = counts.get("per_level", {})
            if per_level:
                st.bar_chart(per_level, x_label="VU", y_label="count", height=260)
        elif ds.get("n_train"):
            st.metric("Training VUs", ds["n_train"])
            if not recipe and not sel.public:
                where = f" ({frame.plain(ds.get('path'))})" if ds.get("path") else ""
                st.caption(f"Its VU dataset folder{where} is not found from here with the generator's fingerprint: "
                           "`data show DIR` lists its patients per level and part.")
        training_section(sel)
    st.subheader("Build, train and evaluate your own")
    st.code(COMMANDS, language="bash")
    st.caption("Or everything on the phantom:")
    st.code(PHANTOM, language="bash")


frame.run_page("Models & data", render, needs_generator=False)
