"""Dashboard tests with Streamlit's AppTest (no browser): every page, public mode, user errors.

The pages run against a fabricated world (tests/fixtures/dashboard_models.py: a tiny untrained
generator, a dataset of random VUs and a report in the exact report format) and against every
shipped generator in models/.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
from fixtures.dashboard_models import APP, APP_TIMEOUT, N_SYNTHETIC, fabricate, start_app  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("overview", "generate", "embeddings", "utility", "privacy", "tradeoffs", "compare", "clinical", "models_data")
FABRICATED = ("fab-region", "fab-noreport", "fab-foreign")
REAL_CAPTION = "REAL patient VU"


def _shipped() -> list[str]:
    try:
        from synthvu_core.models.registry import SHIPPED_DIR, list_generators
    except ImportError:
        return []
    return [g.name for g in list_generators() if Path(g.path).resolve().parent == SHIPPED_DIR.resolve()]


SHIPPED = _shipped()


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return fabricate(tmp_path_factory.mktemp("dashboard-world"))


@pytest.fixture
def env(world: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("SYNTHVU_MODELS", str(world["models"]))
    monkeypatch.delenv("SYNTHVU_PUBLIC", raising=False)
    return world


#: Run the app once (Overview), ``model`` selected through the sidebar picker.
start = start_app


def selected(at: AppTest) -> str:
    """Card name of the generator the sidebar picker holds."""
    from synthvu_core.models.registry import load_card

    return load_card(at.sidebar.selectbox(key="selected_generator").value)["name"]


def visit(at: AppTest, page: str) -> AppTest:
    return at.switch_page(f"app_pages/{page}.py").run()


def captions(at: AppTest) -> list[str]:
    return [c for img in at.image for c in img.captions]


def no_exception(at: AppTest, where: str) -> None:
    assert not at.exception, f"{where}: {[e.value for e in at.exception]}"


# ---- every page, every generator ------------------------------------------------------------------
@pytest.mark.parametrize("model", [*FABRICATED, *SHIPPED])
def test_every_page_runs_for_every_generator(env: dict[str, Path], model: str) -> None:
    at = start(model)
    for page in PAGES:
        visit(at, page)
        no_exception(at, f"{model}/{page}")
        assert at.title, f"{model}/{page}: no title drawn"
        assert selected(at) == model, "selection lost across pages"
    # the Generate page always draws synthetic VUs, and only synthetic ones
    visit(at, "generate")
    assert captions(at) and all(c.startswith("synthetic") for c in captions(at))


def test_report_pages_draw_the_report(env: dict[str, Path]) -> None:
    at = start("fab-region")
    assert [m.value for m in at.metric][:2] == ["0.900", "0.800"]  # TRTR, TSTR from the report
    assert at.success, "the verdict of a chance-level report is shown as a success"
    visit(at, "utility")
    assert len(at.get("plotly_chart")) >= 4  # bars, three confusion matrices, recall
    from synthvu_core.names import ONE_GENERATOR

    assert any(ONE_GENERATOR in m.value for m in at.markdown), "the intervals say they hold one trained generator"
    visit(at, "privacy")
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    names = {t.get("name", "") for spec in charts for t in spec["data"]}
    assert any(n.startswith("pairwise (AUC") for n in names), names
    tables = [t.value for t in at.table]
    assert any("AUC [95% CI]" in t.columns and "p (permutation)" in t.columns for t in tables), "attack results drawn"
    assert any("in verdict" in t.columns and "5% control AUC [95% CI]" in t.columns for t in tables), "attack checks"
    assert not at.dataframe, "the Privacy page's tables wrap their cells (st.table), none is a clipping data grid"
    visit(at, "tradeoffs")
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    names = {t.get("name", "") for spec in charts for t in spec["data"]}
    assert any(n.startswith("TSTR chance: ") for n in names), "every generator's chart draws the dataset's chance"
    frontier = [c.value for c in at.caption if c.value.startswith("Dataset ") and "TRTR" in c.value]
    assert frontier and not any("protect a patient" in c for c in frontier), "no DP generator: no DP patient count"
    assert not at.dataframe, "the frontier's table wraps its cells (st.table): its last columns are not cut at 1280 px"
    assert any("worst TPR @ 1% FPR" in t.value.columns for t in at.table), "the frontier's table is drawn"


def test_compare_draws_two_generators(env: dict[str, Path]) -> None:
    at = visit(start("fab-region"), "compare")
    assert any("Pick 2 to 4" in i.value for i in at.info)
    at.multiselect(key="compare").set_value(["fab-region", "fab-noreport"]).run()
    no_exception(at, "compare")
    # the link itself (query parameters) is checked in a real browser: tests/test_browser_compare.py
    assert len(at.table) == 1 and len(at.get("plotly_chart")) >= 3  # TSTR and AUC bars, the trade-off
    assert any(c.startswith("fab-region: synthetic VUs per position") for c in captions(at))
    assert any(b.label == "Download slides (HTML)" for b in at.get("download_button"))


def test_compare_reads_runs_of_one_recipe_over_their_training_seeds(
    env: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fixtures import dashboard_models

    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.names import ONE_GENERATOR

    ds = VUDataset.load(env["data"])
    for seed in (1, 2):  # one recipe, two training seeds: other weights, other reports
        folder = tmp_path / "models" / f"fab-seed{seed}"
        dashboard_models.fabricate_generator(folder, ds.fingerprint, f"fab-seed{seed}", seed=seed)
        dashboard_models.fabricate_report(ds, folder, ds.fingerprint, seed=seed)
    monkeypatch.setenv("SYNTHVU_MODELS", str(tmp_path / "models"))
    at = visit(start("fab-seed1"), "compare")
    at.multiselect(key="compare").set_value(["fab-seed1", "fab-seed2"]).run()
    no_exception(at, "compare")
    assert any(h.value.startswith("Runs of one recipe") for h in at.subheader)
    text = "\n".join(m.value for m in at.markdown)
    assert "Recipe 1 (dataset" in text and "2 runs" in text and "Over 2 training runs" in text
    assert ONE_GENERATOR in text
    visit(at, "utility")  # the selected run's own page names its recipe's other run and their spread
    no_exception(at, "utility")
    assert any("one of 2 runs of one recipe here (fab-seed1, fab-seed2)" in i.value for i in at.info)


def test_overview_offers_the_selected_generators_slides(env: dict[str, Path], monkeypatch) -> None:
    """Overview's slides button downloads the deck of the selected generator, with its report's numbers;
    a generator without a report gets no button."""
    import streamlit

    made: dict[str, object] = {}
    real = streamlit.download_button

    def spy(label, data=None, *args, **kw):
        made[kw.get("key") or label] = data
        return real(label, data, *args, **kw)

    monkeypatch.setattr(streamlit, "download_button", spy)
    at = start("fab-region")
    no_exception(at, "overview")
    assert [b.label for b in at.get("download_button")].count("Download slides (HTML)") == 1
    deck = made["overview_slides"]()  # built on click only: the button's own data
    assert "<section>" in deck and "Reveal.initialize" in deck
    assert "data-model='fab-region' data-key='utility.tstr.balanced_accuracy'>0.800<" in deck
    assert "data-model='fab-noreport'" not in deck
    made.clear()
    picker = at.sidebar.selectbox(key="selected_generator")
    picker.select_index([o.removesuffix(" (yours)") for o in picker.options].index("fab-noreport")).run()
    no_exception(at, "overview without report")
    assert "overview_slides" not in made and not [b for b in at.get("download_button") if "slides" in b.label]


def test_generator_choice_is_remembered_across_pages(env: dict[str, Path]) -> None:
    at = start("fab-noreport")
    for page in ("generate", "utility", "overview"):
        visit(at, page)
        assert selected(at) == "fab-noreport"
    assert any(b.label == "Compute report" for b in at.button), "a generator without a report offers to compute it"


def test_no_generators_anywhere(env: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from synthvu_core.models import registry

    monkeypatch.setattr(registry, "SHIPPED_DIR", tmp_path / "none")
    monkeypatch.setenv("SYNTHVU_MODELS", str(tmp_path / "empty"))
    from dashboard import loaders

    loaders._generators.clear()
    at = start()
    for page in PAGES:
        visit(at, page)
        no_exception(at, page)
        assert not at.error, [e.value for e in at.error]
    visit(at, "generate")
    assert any("No generator" in i.value for i in at.info)


# ---- public mode ---------------------------------------------------------------------------------
def show_closest_real_pairs(at: AppTest, data: Path) -> None:
    """Outside public mode: give the dataset folder and press the button on the Privacy page."""
    visit(at, "privacy")
    at.text_input(key="closest_real_folder").set_value(str(data)).run()
    at.button(key="closest_real_load").click().run()


def test_real_images_are_shown_outside_public_mode(env: dict[str, Path]) -> None:
    at = start("fab-region")
    show_closest_real_pairs(at, env["data"])
    no_exception(at, "privacy with real pairs")
    assert any(c.startswith(REAL_CAPTION) for c in captions(at)), captions(at)


@pytest.mark.parametrize("how", ["env", "secrets"])
def test_public_mode_never_renders_a_real_image(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Every page of every generator in public mode: the fabricated ones (which hold real VUs) each way public mode
    is set, the shipped ones shared between the two ways (each generator's pages are drawn by code that does not ask
    how public mode was set, and every shipped one is visited once)."""
    if how == "env":
        monkeypatch.setenv("SYNTHVU_PUBLIC", "1")
    for model in (*FABRICATED, *SHIPPED[("env", "secrets").index(how)::2]):
        at = start(model, secrets={"public": True} if how == "secrets" else None)
        for page in PAGES:
            visit(at, page)
            no_exception(at, f"public {model}/{page}")
            assert not any(REAL_CAPTION in c for c in captions(at)), f"{model}/{page}: {captions(at)}"
            assert all(c.startswith("synthetic") for c in captions(at))
            assert not [b for b in at.button if b.label.startswith(("Show the real", "Compute report"))]
    at = start("fab-region", secrets={"public": True} if how == "secrets" else None)
    visit(at, "privacy")
    assert not [t for t in at.text_input if t.key and t.key.startswith("closest_real")], "no way to ask for real VUs"
    visit(at, "embeddings")
    (chart,) = at.get("plotly_chart")
    spec = json.loads(chart.proto.spec)
    real_traces = [t for t in spec["data"] if "real" in t.get("name", "")]
    assert real_traces and all(t["type"] == "contour" and "customdata" not in t for t in real_traces), real_traces
    n_real = len(np.load(env["models"] / "fab-region" / "report" / "arrays.npz")["umap/real"])
    assert all(len(t.get("x", [])) != n_real for t in spec["data"]), "no per-VU real coordinates in the chart"


def test_public_report_download_has_no_patient_ids(env: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard import presentation
    from dashboard.frame import Selection
    from dashboard.summary import view_of
    from synthvu_core.evaluation.report import load_report
    from synthvu_core.models.registry import list_generators

    (info,) = [g for g in list_generators() if g.name == "fab-region"]
    view = view_of(load_report(info.path))
    patients = set(view.array("candidates/patient").tolist())
    private = presentation.report_html(Selection(info, info.card, view, public=False))
    public = presentation.report_html(Selection(info, info.card, view, public=True))
    assert any(p in private for p in patients)
    assert not any(p in public for p in patients)
    for html in (private, public):
        assert html.count("* plotly.js v") == 1, "plotly.js inlined exactly once"
        assert "<script src=" not in html and "<link " not in html, "self-contained: nothing fetched"
        assert html.count("Plotly.newPlot") >= 5


# ---- user errors become messages ------------------------------------------------------------------
def test_zero_samples_is_a_message(env: dict[str, Path]) -> None:
    at = visit(start("fab-region"), "generate")
    at.number_input(key="gen_count").set_value(0)
    [b for b in at.button if b.label == "Generate"][0].click().run()
    no_exception(at, "zero samples")
    assert any("at least one" in e.value for e in at.error), [e.value for e in at.error]
    assert at.image, "the interpolation below still works"


def test_unknown_model_folder_is_a_message(env: dict[str, Path], tmp_path: Path) -> None:
    at = start("fab-region")
    at.sidebar.text_input(key="folder_input").set_value(str(tmp_path / "nowhere"))
    [b for b in at.sidebar.button if b.label == "Add"][0].click().run()
    no_exception(at, "unknown folder")
    assert any("no generator folder" in e.value for e in at.sidebar.error), [e.value for e in at.sidebar.error]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "card.json").write_text("{not json")
    at.sidebar.text_input(key="folder_input").set_value(str(broken))
    [b for b in at.sidebar.button if b.label == "Add"][0].click().run()
    assert any("card.json" in e.value for e in at.sidebar.error), [e.value for e in at.sidebar.error]


def test_adding_a_folder_selects_its_generator(
    env: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTHVU_MODELS", str(tmp_path / "empty"))
    at = start()
    at.sidebar.text_input(key="folder_input").set_value(str(env["models"] / "fab-region"))
    [b for b in at.sidebar.button if b.label == "Add"][0].click().run()
    no_exception(at, "add folder")
    assert selected(at) == "fab-region"
    visit(at, "utility")
    assert at.get("plotly_chart"), "the added generator's report is drawn"


def test_unknown_model_in_the_link_is_a_message(env: dict[str, Path]) -> None:
    at = AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT)
    at.query_params["model"] = "no-such-model"
    at.run()
    no_exception(at, "unknown ?model=")
    assert any("no-such-model" in e.value for e in at.sidebar.error)


def test_report_from_another_dataset_is_a_warning_on_every_page(env: dict[str, Path]) -> None:
    at = start("fab-foreign")
    for page in ("overview", "embeddings", "utility", "privacy"):
        visit(at, page)
        no_exception(at, page)
        assert any("not on the expected dataset" in w.value for w in at.warning), (page, [w.value for w in at.warning])
        assert not at.get("plotly_chart"), f"{page}: no figure of a foreign report"
    visit(at, "tradeoffs")
    assert any("fab-foreign" in c.value for c in at.caption)


def test_real_vus_from_another_dataset_is_a_message(env: dict[str, Path], tmp_path: Path) -> None:
    from fixtures.dashboard_models import fabricate_dataset

    other = fabricate_dataset(tmp_path / "other", seed=1)
    at = start("fab-region")
    show_closest_real_pairs(at, other.root)
    no_exception(at, "foreign dataset")
    assert any("another dataset" in e.value for e in at.error), [e.value for e in at.error]


def test_compute_report_button_writes_and_shows_the_report(
    env: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from fixtures import dashboard_models

    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.evaluation import report as report_module

    folder = tmp_path / "models" / "fresh"
    shutil.copytree(env["models"] / "fab-noreport", folder)
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps(dict(card, name="fresh")))
    calls = []

    def fake_evaluate(model_dir, dataset=None, **kw):  # the real one trains classifiers and fits UMAP (minutes)
        calls.append((Path(model_dir), dataset))
        ds = VUDataset.load(dataset)
        dashboard_models.fabricate_report(ds, Path(model_dir), ds.fingerprint)

    monkeypatch.setattr(report_module, "evaluate_generator", fake_evaluate)
    monkeypatch.setenv("SYNTHVU_MODELS", str(tmp_path / "models"))
    at = start("fresh")
    at.text_input(key="compute_dataset").set_value(str(env["data"])).run()
    [b for b in at.button if b.label == "Compute report"][0].click().run()
    no_exception(at, "compute report")
    assert calls and calls[0][0] == folder and Path(calls[0][1]) == env["data"]
    assert [m.value for m in at.metric][:2] == ["0.900", "0.800"], "the new report is drawn"


def test_password_gate(env: dict[str, Path]) -> None:
    at = start(secrets={"password": "s3cret"})
    assert not at.sidebar.selectbox, "nothing but the password field before the password"
    at.text_input(key="password_input").set_value("wrong").run()
    assert at.error and not at.sidebar.selectbox
    at.text_input(key="password_input").set_value("s3cret").run()
    no_exception(at, "after password")
    assert at.sidebar.selectbox(key="selected_generator")


# ---- the pieces under the pages --------------------------------------------------------------------
def test_prior_rows_are_the_rows_of_the_full_sample(env: dict[str, Path]) -> None:
    import torch

    from dashboard.loaders import prior_rows
    from synthvu_core.models.registry import load_generator
    from synthvu_core.models.sampling import sample

    torch.set_num_threads(1)
    gen = load_generator(env["models"] / "fab-region")
    full = sample(gen, N_SYNTHETIC, seed=3).images
    rows = np.array([0, 7, 123, N_SYNTHETIC - 1])
    np.testing.assert_allclose(prior_rows(gen, N_SYNTHETIC, rows, seed=3), full[rows], atol=1e-5)
    assert not np.allclose(prior_rows(gen, N_SYNTHETIC, rows, seed=4), full[rows], atol=1e-3)


def test_montage_layouts() -> None:
    from dashboard.images import montage

    vus = np.stack([np.full((3, 4, 4), i, dtype=np.uint8) for i in range(5)])
    one = montage(vus, slice_index=1, ncols=2, gap=1, zoom=1)
    assert one.shape == (3 * 5 + 1, 2 * 5 + 1)
    assert one[1, 1] == 0 and one[1, 6] == 1 and one[11, 1] == 4  # VU i at row i // 2, column i % 2
    rows = montage(vus, gap=1, zoom=2)
    assert rows.shape == (2 * (5 * 5 + 1), 2 * (3 * 5 + 1))  # one row per VU, its 3 slices across
    with pytest.raises(ValueError):
        montage(vus, slice_index=3)


def test_generate_pictures_are_the_montages_of_the_samples(env: dict[str, Path]) -> None:
    import io

    from PIL import Image

    from dashboard import loaders
    from dashboard.images import labelled_rows, rows_by_position, rows_per_vu, strip

    model = str(env["models"] / "fab-region")
    stamp = loaders.weights_stamp(model)
    images, labels, classes = loaders.samples(model, stamp, 19, None, 4)
    by_position = rows_by_position(images, labels, classes, slice_index=2, ncols=8)
    for k, want in ((2, by_position), (None, rows_per_vu(images[:16], labels[:16], classes))):
        png, counts = loaders.sample_montage(model, stamp, 19, None, 4, k)
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), want)
        assert counts == {c: int((labels == i).sum()) for i, c in enumerate(classes) if (labels == i).any()}
    walk = loaders.interpolation(model, stamp, "C", "L", 5, 1)
    got = np.asarray(Image.open(io.BytesIO(loaders.interpolation_strip(model, stamp, "C", "L", 5, 1))))
    np.testing.assert_array_equal(got, labelled_rows([("from C\nto L", strip(walk[:, walk.shape[1] // 2]))]))


def test_a_second_visit_to_generate_encodes_no_picture(env: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard import loaders

    encoded = []
    png_bytes = loaders.png_bytes
    monkeypatch.setattr(loaders, "png_bytes", lambda image: encoded.append(image.shape) or png_bytes(image))
    at = visit(start("fab-region"), "generate")
    at.number_input(key="interp_seed").set_value(977).run()  # a walk no other test drew
    first = len(encoded)
    assert first >= 1 and len(at.image) == 2
    again = visit(start("fab-region"), "generate")  # another visitor (a reload): the same pictures
    again.number_input(key="interp_seed").set_value(977).run()
    no_exception(again, "second visit")
    assert len(encoded) == first and captions(again) == captions(at)


def test_generate_reruns_sample_once(env: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The VUs of a (generator, count, position, seed) are drawn once: a rerun, a reload (another session), the
    other layout and another slice read the caches."""
    from synthvu_core.models import sampling

    drawn = []
    sample_uint8 = sampling.sample_uint8
    monkeypatch.setattr(sampling, "sample_uint8", lambda g, n, **kw: drawn.append((n, kw)) or sample_uint8(g, n, **kw))

    def draw(at: AppTest) -> AppTest:
        at.number_input(key="gen_seed").set_value(4243)  # a request no other test made
        [b for b in at.button if b.label == "Generate"][0].click().run()
        no_exception(at, "generate")
        return at

    at = draw(visit(start("fab-region"), "generate"))  # the first visit drew seed 0, then this one
    assert drawn[-1] == (16, {"position": None, "seed": 4243})
    n_drawn = len(drawn)
    pictures = captions(at)
    at.run()
    at.slider(key="gen_slice").set_value(1).run()
    at.radio(key="gen_layout").set_value(at.radio(key="gen_layout").options[1]).run()
    again = draw(visit(start("fab-region"), "generate"))
    assert len(drawn) == n_drawn, f"sampled again on a rerun: {drawn[n_drawn:]}"
    assert captions(again) == pictures


def test_png_pictures_are_sent_as_png(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached PNG reaches the browser as those bytes: not decoded and re-encoded (as lossy JPEG) every run."""
    import streamlit as st

    from dashboard import frame

    sent = []
    monkeypatch.setattr(st, "image", lambda image, **kw: sent.append(kw))
    frame.show_image(b"\x89PNG...", "a montage", width="stretch")
    frame.show_image(np.zeros((4, 4), np.uint8), "an array")
    assert sent[0]["output_format"] == "PNG" and "output_format" not in sent[1]


def test_a_page_run_that_imported_modules_freezes_the_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc
    import sys
    import types

    from dashboard import loaders

    loaders.freeze_long_lived_objects()
    frozen = gc.get_freeze_count()
    assert not loaders.freeze_long_lived_objects(), "nothing imported since: no collection, no freeze"
    monkeypatch.setitem(sys.modules, "synthvu_test_new_module", types.ModuleType("synthvu_test_new_module"))
    kept = [[] for _ in range(100)]  # live objects made since: frozen with the new module
    assert loaders.freeze_long_lived_objects()
    assert gc.get_freeze_count() >= frozen + len(kept)


def test_selection_maps_points_to_report_rows() -> None:
    from dashboard.figures import umap_figure
    from dashboard.summary import ReportView

    view = ReportView(
        scalars={},
        arrays={
            "umap/real": np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]),
            "umap/real_labels": np.array([0, 1, 0]),
            "umap/synthetic": np.array([[5.0, 5.0], [6.0, 6.0]]),
            "umap/synthetic_labels": np.array([1, 1]),
        },
    )
    from dashboard.figures import selected_rows

    fig, sources = umap_figure(view, ["C", "T"], real_on_top=False)
    assert len(sources) == len(fig.data)
    # by curve and point index: trace 1 is "T real" (real row 1); trace 2 is "T synthetic" (rows 0, 1)
    picked = selected_rows([{"curve_number": 1, "point_index": 0}, {"curve_number": 2, "point_index": 1}], sources)
    assert picked == {"real": [1], "synthetic": [1]}
    # customdata wins where present
    assert selected_rows([{"customdata": [1, 0]}], sources) == {"real": [], "synthetic": [0]}
    fig, sources = umap_figure(view, ["C", "T"], real_as_density=True, real_on_top=False)
    assert sources[0] is None and selected_rows([{"curve_number": 0, "point_index": 0}], sources) == {
        "real": [],
        "synthetic": [],
    }


def test_verdicts_come_from_the_report_one_per_threat_model() -> None:
    from dashboard.summary import ReportView, attack_rows, verdict, with_ci

    meta = {
        "verdicts": {
            "released_samples": {"level": "caution", "text": "Some signal."},
            "released_discriminator": {"level": "leak", "text": "D knows. Keep it private."},
        },
        "power": {"pairwise/pixel": {"has_power": True}, "domias/embedding": {"has_power": False}},
        "missing": {
            "privacy.pairwise.pixel.tpr_at_1pct_fpr": "not estimable with 552 non-member VUs: 0.01 FPR rests on 5.5"
        },
    }
    scalars = {
        "privacy.pairwise.pixel.auc": 0.66,
        "privacy.pairwise.pixel.auc_ci_low": 0.6,
        "privacy.pairwise.pixel.auc_ci_high": 0.7,
        "privacy.pairwise.pixel.tpr_at_1pct_fpr": None,
        "privacy.domias.embedding.auc": 0.5,
    }
    view = ReportView(scalars=scalars, meta=meta)
    assert verdict(view).level == "caution" and "not differentially private" in verdict(view).text
    assert verdict(view, threat="released_discriminator").level == "leak"
    assert verdict(ReportView(scalars=scalars)).level == "unknown"  # a report without verdicts is not read as safe
    assert verdict(None).level == "unknown"
    assert with_ci(view, "privacy.pairwise.pixel.auc") == "0.660 [0.600, 0.700]"
    assert with_ci(view, "privacy.pairwise.pixel.tpr_at_1pct_fpr") == "not estimable with 552 non-member VUs"
    rows = {(r["attack"], r["space"]): r for r in attack_rows(view)}
    assert rows[("domias", "embedding")]["power (5% graded control)"] == "no power on this data"
    assert rows[("pairwise", "pixel")]["power (5% graded control)"] == "yes"
    eps = verdict(view, {"dp": {"epsilon": 4.0, "delta": 1e-5}})
    assert "ε = 4.00" in eps.text
    assert "per VU" in eps.text  # a card without a unit protected a VU
    assert "whatever the attacks find" not in eps.text  # ... so no claim that the bound covers a patient
    patient = verdict(view, {"dp": {"epsilon": 4.0, "delta": 1e-5, "unit": "patient"}})
    assert "per patient" in patient.text and "whatever the attacks find" not in patient.text  # no ledger: not composed
    assert "not composed" in patient.text
    dp = {"epsilon": 4.0, "delta": 1e-5, "unit": "patient"}
    composed = verdict(view, {"dp": dp, "privacy_ledger": {"composed_epsilon": 6.5, "runs": 2, "entries": []}})
    assert "composed ε = 6.50 over the 2 runs" in composed.text and "whatever the attacks find" in composed.text
    broken = verdict(view, {"dp": dp, "privacy_ledger": {"composed_epsilon": None, "runs": 3, "entries": []}})
    assert "composed ε = ∞ over the 3 runs" in broken.text and "whatever the attacks find" not in broken.text
    assert "no bound holds" in broken.text  # a run without DP on the same patients: said plainly


@pytest.mark.skipif("acgan-dp-e1" not in SHIPPED, reason="the shipped acgan-dp-e1 is not installed")
@pytest.mark.skipif(not (ROOT / "models" / "acgan-dp-e1" / "report" / "report.json").is_file(),
                    reason="acgan-dp-e1 has no report yet (the Privacy page draws a report)")
def test_overview_and_privacy_show_the_composed_bound_beside_the_run_epsilon(env: dict[str, Path]) -> None:
    """acgan-dp-e1's cohort also trained the non-DP baselines: its ledger composes to infinity; both pages say so."""
    from synthvu_core.models.ledger import composed_of
    from synthvu_core.models.registry import load_card

    runs = composed_of(load_card(ROOT / "models" / "acgan-dp-e1"))[1]  # its card's runs and the listed cards' later
    assert runs > load_card(ROOT / "models" / "acgan-dp-e1")["privacy_ledger"]["runs"]
    at = start("acgan-dp-e1")
    no_exception(at, "overview")
    text = " ".join(c.value for c in at.caption)
    assert f"composed ε = ∞ over the {runs} runs" in text and "a run without differential privacy" in text
    at = visit(at, "privacy")
    no_exception(at, "privacy")
    assert "composed ε = ∞" in " ".join(m.value for m in at.markdown)
    assert "whatever the attacks find" not in " ".join(str(e.value) for e in at.success)


def test_listing_generators_never_imports_torch(env: dict[str, Path]) -> None:
    """The dashboard's first paint lists generators: that must not pay for importing torch."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; from synthvu_core.models.registry import list_generators; "
        "assert list_generators(); assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    from synthvu_core.models.acgan import ARCHITECTURES
    from synthvu_core.models.registry import ARCHITECTURE_NAMES

    assert ARCHITECTURE_NAMES == (*ARCHITECTURES, "diffusion", "diffusion3d")  # AC-GANs, latent diffusion (VU, 3-D)


def test_shareable_card_hides_source_names_and_paths() -> None:
    from dashboard.summary import shareable_card

    card = {
        "dataset": {"sources": ["sub-0001_img.nii.gz", "sub-0002_img.nii.gz"]},
        "training": {"command": "train --dataset x", "steps": 3},
    }
    out = shareable_card(card)
    assert "sub-0001" not in json.dumps(out) and out["dataset"]["sources"] == "2 source files"
    assert "command" not in out["training"] and out["training"]["steps"] == 3
    assert card["dataset"]["sources"][0] == "sub-0001_img.nii.gz", "the card itself is untouched"


def test_frontier_figure_draws_both_routes_against_epsilon_with_the_baseline() -> None:
    from dashboard.figures import NO_DP_TEXT, frontier_figure

    rows = [
        {"name": "pre-e1", "dataset": "A", "epsilon": 1.0, "route": "pretrained", "tstr": 0.5, "tstr_lo": 0.4,
         "tstr_hi": 0.6, "risk": 0.51},
        {"name": "pre-e10", "dataset": "A", "epsilon": 10.0, "route": "pretrained", "tstr": 0.8, "risk": 0.52},
        {"name": "scratch-e10", "dataset": "A", "epsilon": 10.0, "route": "scratch", "tstr": 0.3, "risk": 0.5},
        {"name": "nodp", "dataset": "A", "epsilon": None, "route": "pretrained", "tstr": 0.9, "risk": 0.6},
    ]
    fig = frontier_figure(rows, fingerprint="A", dataset_label="set A", trtr=0.95, chance=1 / 3)
    pre = [t for t in fig.data if t.name == "public pretraining + fine-tuning with DP"]
    assert len(pre) == 2 and list(pre[0].x) == [1.0, 10.0] and list(pre[0].y) == [0.5, 0.8]
    assert list(pre[0].error_y.array) == pytest.approx([0.1, 0.0])
    assert list(pre[0].error_y.arrayminus) == pytest.approx([0.1, 0.0])
    assert [list(t.x) for t in fig.data if t.name == "from scratch with DP"] == [[10.0], [10.0]]
    nodp = [t for t in fig.data if t.name == f"public pretraining + fine-tuning, {NO_DP_TEXT}"]
    assert len(nodp) == 2 and list(nodp[0].x) == [100.0] and list(nodp[0].y) == [0.9]
    texts = [a.text for a in fig.layout.annotations]
    assert "TRTR (real data) 0.950" in texts and "chance 0.333" in texts and "chance 0.500" in texts
    assert "set A" in fig.layout.title.text


def test_power_rows_show_the_rise_over_the_generators_own_auc() -> None:
    from dashboard.figures import power_figure
    from dashboard.summary import ReportView, power_of, power_rows

    curve = {
        "fractions": [0.01, 0.05, 0.2], "auc": [0.9, 0.95, 0.99], "ci_low": [0.8, 0.9, 0.97],
        "ci_high": [0.95, 0.99, 1.0], "rise": [0.0, 0.0, 0.0], "rise_low": [0.0, 0.0, 0.0],
        "rise_high": [0.0, 0.0, 0.0], "own_auc": 0.99, "own_ci": [0.97, 1.0], "has_power": False,
        "status": "no_room", "counts": True,
    }
    raised = dict(curve, rise=[0.01, 0.05, 0.2], rise_low=[-0.01, 0.02, 0.1], rise_high=[0.03, 0.08, 0.3],
                  own_auc=0.5, own_ci=[0.4, 0.6], has_power=True, status="power")
    view = ReportView({}, meta={"power": {"pairwise/pixel": raised, "distribution/pixel": curve}})
    rows = {(r["attack"], r["space"]): r for r in power_rows(view)}
    assert rows[("pairwise", "pixel")]["rise at 5% member copies"] == "+0.050 [+0.020, +0.080]"
    assert power_of(view, "pairwise", "pixel") == "yes"
    assert power_of(view, "distribution", "pixel").startswith("no room to rise")  # a finding, not "no power"
    fig = power_figure(view)
    assert len(fig.data) == 2
    assert list(fig.layout.xaxis.tickvals) == [1, 5, 20] and list(fig.layout.xaxis.ticktext) == ["1%", "5%", "20%"]


def test_independent_rows_show_the_family_wise_interval_of_counted_attacks_only() -> None:
    from dashboard.summary import ReportView, independent_rows, independent_text

    def auc(a, lo, hi, name="pairwise.pixel"):
        return {f"privacy.{name}.auc": a, f"privacy.{name}.auc_ci_low": lo, f"privacy.{name}.auc_ci_high": hi}

    ctl = ReportView({**auc(0.53, 0.501, 0.56), **auc(0.49, 0.45, 0.53, "distribution.umap")})
    check = {
        "rows": {"pairwise/pixel": {"auc": 0.53, "ci_95": [0.501, 0.56], "ci_family": [0.49, 0.57], "covers": True}},
        "text": "The independent control sits at chance in every counted attack.",
    }
    view = ReportView({}, meta={"independent_control": check, "verdicts": {"released_samples": {
        "counted": ["pairwise/pixel"], "primary": {"attack": "pairwise/pixel"}}}}, controls={"independent": ctl})
    rows = {(r["attack"], r["space"]): r for r in independent_rows(view)}
    pix, umap = rows[("pairwise", "pixel")], rows[("distribution", "umap")]
    assert pix["95% CI covers 0.5"] == "no" and pix["family-wise CI covers 0.5"] == "yes"
    assert pix["family-wise CI"] == "[0.490, 0.570]" and pix["in verdict"] == "primary"
    assert umap["95% CI covers 0.5"] == "yes" and umap["family-wise CI"] == "—" and umap["in verdict"] == "not counted"
    assert independent_text(view) == check["text"]


def test_usefulness_warns_where_one_class_is_at_or_below_chance():
    """Above chance overall is not green when a class of the holdout is at or below chance (shipped reports)."""
    import json

    from dashboard import loaders
    from dashboard.summary import usefulness_box

    models = Path(__file__).resolve().parents[1] / "models"

    def box(name):
        classes = json.loads((models / name / "card.json").read_text())["classes"]
        return usefulness_box(loaders.report(models / name), classes)

    spine = loaders.report(models / "acgan-spine-mri")  # TSTR 0.440 [0.23, 0.65] above chance 0.167, T11/T12 at 0
    classes = json.loads((models / "acgan-spine-mri" / "card.json").read_text())["classes"]
    kind, text = usefulness_box(spine, classes)
    assert kind == "warning" and "T11/T12 (0.000 on 1 holdout VU)" in text and "L3/L4" not in text
    from dashboard.summary import recall_rows

    shown = {r["setting"]: r for r in recall_rows(spine, classes)}  # what each recall rests on
    assert shown["holdout VUs"]["L3/L4"] == "5" and shown["holdout VUs"]["T11/T12"] == "1"
    assert shown["holdout patients"]["L3/L4"] == "5" and shown["TSTR 95% CI"]["L3/L4"] == "[0.00, 0.83]"
    assert shown["TSTR 95% CI"]["L4/L5"] == "[0.00, 1.00]"
    assert shown["TSTR 95% CI"]["T11/T12"] == "1 patient: no interval"
    vocabulary = [f"X{i}" for i in range(22)] + classes  # a DP vocabulary: most classes absent from the holdout
    arrays = {f"utility/{s}/recall": np.concatenate([np.full(22, np.nan), spine.arrays[f"utility/{s}/recall"]])
              for s in ("trtr", "tstr")}
    arrays["utility/holdout_labels"] = spine.arrays["utility/holdout_labels"] + 22
    rows = recall_rows(dataclasses.replace(spine, arrays={**spine.arrays, **arrays}), vocabulary)
    assert list(rows[1]) == ["setting", *classes, "absent from the holdout"]
    assert rows[1]["L3/L4"] == "0.360" and rows[3]["setting"] == "holdout VUs" and rows[3]["L3/L4"] == "5"
    assert rows[0]["absent from the holdout"] == "22 classes" and rows[3]["absent from the holdout"] == "0"

    def with_recall(value):
        recall = np.array(spine.arrays["utility/tstr/recall"], dtype=float)
        recall[classes.index("T11/T12")] = 0.8  # the shipped run's one level at chance lifted: only L3/L4 varies
        recall[classes.index("L3/L4")] = value
        return dataclasses.replace(spine, arrays={**spine.arrays, "utility/tstr/recall": recall})

    assert usefulness_box(with_recall(0.5), classes)[0] == "success"  # every level of the holdout above chance
    kind, text = usefulness_box(with_recall(0.1), classes)
    assert kind == "warning" and "L3/L4 (0.100 on 5 holdout VUs)" in text and "L1/L2" not in text
    assert "TRTR too" not in text and "real classifier" not in text  # TRTR recognises L3/L4 above chance
    trtr = np.array(spine.arrays["utility/trtr/recall"], dtype=float)
    trtr[classes.index("L3/L4")] = 0.1
    missed = with_recall(0.1)
    kind, text = usefulness_box(dataclasses.replace(missed, arrays={**missed.arrays, "utility/trtr/recall": trtr}),
                                classes)
    assert kind == "warning" and "L3/L4 (0.100 on 5 holdout VUs; TRTR too)" in text and "cannot show" in text
    assert "not useful for telling" not in text  # a level the real classifier misses too is no verdict on the generator
    assert usefulness_box(with_recall(1 / 6), classes)[0] == "warning"  # at chance counts as not learnt
    assert box("acgan-phantom")[0] == "success"
    assert box("acgan-phantom-leaky")[0] == "error"


def test_a_class_at_chance_on_one_holdout_patient_is_not_called_not_useful():
    """T11/T12 of the shipped acgan-spine-mri reads 0 on one holdout VU of one patient: no interval, so no claim."""
    import dataclasses
    import json

    from dashboard import loaders
    from dashboard.summary import usefulness_box
    from synthvu_core.evaluation.utility import class_patients, class_recall

    folder = Path(__file__).resolve().parents[1] / "models" / "acgan-spine-mri"
    spine = loaders.report(folder)
    classes = json.loads((folder / "card.json").read_text())["classes"]
    assert class_patients(spine.arrays, len(classes)) == [1, 1, 5, 5, 5, 5]
    assert [c.n_patients for c in class_recall(spine.arrays, "tstr")] == [1, 1, 5, 5, 5, 5]
    kind, text = usefulness_box(spine, classes)
    assert kind == "warning" and "T11/T12 (0.000 on 1 holdout VU), read on one holdout patient" in text
    assert "cannot tell whether the samples teach that class" in text and "not useful for telling" not in text
    recall = np.array(spine.arrays["utility/tstr/recall"], dtype=float)
    recall[classes.index("L3/L4")] = 0.1  # and a level on 5 holdout patients at chance: that one is a finding
    kind, text = usefulness_box(dataclasses.replace(spine, arrays={**spine.arrays, "utility/tstr/recall": recall}),
                                classes)
    assert kind == "warning"
    assert "L3/L4 (0.100 on 5 holdout VUs): not useful for telling that class apart on this holdout" in text
    assert "T11/T12 (0.000 on 1 holdout VU), read on one holdout patient" in text
    assert "T11/T12 (0.000 on 1 holdout VU):" not in text


def test_an_inconclusive_verdict_names_its_level_once(monkeypatch):
    import contextlib

    from dashboard import frame

    shown = []
    monkeypatch.setattr(frame.st, "markdown", lambda text, **kw: shown.append(text))
    monkeypatch.setattr(frame.st, "container", lambda **kw: contextlib.nullcontext())
    frame.show_verdict("inconclusive", "Inconclusive: the design has 5 member and 5 non-member patients")
    frame.show_verdict("inconclusive", "Not enough patients to tell")
    assert shown[0].lower().count("inconclusive") == 1 and "the design has 5 member" in shown[0]
    assert "Not enough patients to tell" in shown[1]


@pytest.mark.skipif("acgan-phantom" not in SHIPPED, reason="the shipped acgan-phantom is not installed")
def test_utility_names_each_reason_for_a_missing_number_once(monkeypatch) -> None:
    """The shipped phantom report gives one reason for the 11 numbers of TSTR on the whole synthetic set: the
    Utility page says it once, for the group, not once per number."""
    from dashboard.summary import missing_lines

    monkeypatch.delenv("SYNTHVU_MODELS", raising=False)
    monkeypatch.delenv("SYNTHVU_PUBLIC", raising=False)
    at = visit(start("acgan-phantom"), "utility")
    no_exception(at, "utility")
    lines = [c.value for c in at.caption if "not measured:" in c.value]
    release = [line for line in lines if line.startswith("`utility.release.")]
    assert len(release) == 1 and release[0].startswith("`utility.release.*` (11 numbers) not measured: the synthetic")
    assert len(lines) == len(set(line.split("not measured: ", 1)[1] for line in lines))  # no reason said twice
    assert missing_lines({"utility.trts.auc": "why"}) == ["`utility.trts.auc` not measured: why"]


def test_models_data_lists_an_own_datasets_levels_and_what_train_warned(env, tmp_path, monkeypatch) -> None:
    """A generator of the user's own data: Models & data reads the dataset folder its card names, level by level
    (patients per part and per source), with the warnings `train` printed; where that folder is not found from
    here, it says so and names `data show`."""
    from fixtures import dashboard_models

    ds = dashboard_models.fabricate_own_dataset(tmp_path / "vus")
    folder = tmp_path / "models" / "fab-own"
    dashboard_models.fabricate_generator(folder, ds.fingerprint, "fab-own")
    card = json.loads((folder / "card.json").read_text())
    split = {k: v for k, v in ds.card["split"].items() if k != "patients"}
    card.update(scheme="level", classes=["T12/L1", "L1/L2", "L2/L3"])
    card["dataset"].update(path=str(tmp_path / "vus"), split=split, sources=["a/sub-00_img.nii.gz"])
    (folder / "card.json").write_text(json.dumps(card))
    moved = tmp_path / "models" / "fab-moved"  # the same, its dataset folder not where the card says
    dashboard_models.fabricate_generator(moved, ds.fingerprint, "fab-moved")
    moved_card = {**card, "name": "fab-moved", "dataset": {**card["dataset"], "path": str(tmp_path / "moved")}}
    (moved / "card.json").write_text(json.dumps(moved_card))
    monkeypatch.setenv("SYNTHVU_MODELS", str(tmp_path / "models"))
    at = visit(start("fab-own"), "models_data")
    no_exception(at, "models_data")
    table = next(t.value for t in at.dataframe if "level" in t.value.columns)
    assert list(table["level"]) == ["T12/L1", "L1/L2", "L2/L3"]
    assert list(table["train patients"]) == [2, 6, 6] and list(table["holdout patients"]) == [0, 2, 2]
    assert list(table["patients by source"]) == ["a 3", "a 3, b 7", "a 3, b 7"]
    warned = [w.value.replace("\\", "") for w in at.warning]
    assert any("T12/L1 \\(2, all a\\)" in w.value for w in at.warning)  # source names shown as written (escaped)
    assert any("\\(`data build --split`\\)" in w.value for w in at.warning)  # a command stays code
    assert any(w.startswith("fewer than 5 training patients for T12/L1 (2, all a)") for w in warned), warned
    assert any(w.startswith("fewer than 2 holdout patients for T12/L1 (0)") for w in warned), warned
    at = visit(start("fab-moved"), "models_data")
    no_exception(at, "models_data")
    assert not any("level" in t.value.columns for t in at.dataframe)
    assert any("is not found from here" in c.value and "data show" in c.value for c in at.caption)
    monkeypatch.setenv("SYNTHVU_PUBLIC", "1")  # a shared link opens no folder a card names, and names none
    at = visit(start("fab-own"), "models_data")
    no_exception(at, "models_data")
    assert not any("level" in t.value.columns for t in at.dataframe)
    shown = [e.value for kind in (at.caption, at.markdown, at.warning, at.info) for e in kind]
    assert not any(tmp_path.name in str(v).replace("\\", "") for v in shown)
    assert not any("is not found from here" in str(v) for v in shown)
