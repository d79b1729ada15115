"""Dashboard fails closed (issue 15), with Streamlit's AppTest: broken secrets close the app, passwords
are compared as UTF-8 bytes with a growing delay, public mode takes no folder input and sends no path,
no per-candidate or per-patient score, card text is plain text, a stale report is never shown."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
from fixtures.dashboard_models import (  # noqa: E402
    fabricate,
    fabricate_generator,
    point_dashboard_at,
    start_app,
)
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return fabricate(tmp_path_factory.mktemp("fail-closed-world"))


@pytest.fixture
def env(world: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    return point_dashboard_at(world, monkeypatch)


@pytest.fixture
def secrets_file(tmp_path: Path):
    """Point Streamlit's ``secrets.files`` at one file of the test's choosing (restored afterwards)."""
    import streamlit as st
    from streamlit import config

    old = config.get_option("secrets.files")
    path = tmp_path / ".streamlit" / "secrets.toml"
    path.parent.mkdir()
    config.set_option("secrets.files", [str(path)])
    st.secrets._reset()  # the global secrets are parsed once and kept: read this file
    yield path
    config.set_option("secrets.files", old)
    st.secrets._reset()


#: Run the app once (Overview), ``model`` selected through the sidebar picker.
start = start_app


def visit(at: AppTest, page: str) -> AppTest:
    return at.switch_page(f"app_pages/{page}.py").run()


def texts(at: AppTest) -> str:
    """Every text the run sent, in one string (markdown, captions, alerts, headers, metrics)."""
    parts = []
    kinds = ("markdown", "caption", "error", "warning", "info", "success", "header", "subheader", "title", "metric")
    for kind in kinds:
        parts += [str(getattr(e, "value", "")) for e in getattr(at, kind)]
    return "\n".join(parts)


def no_exception(at: AppTest, where: str) -> None:
    assert not at.exception, f"{where}: {[e.value for e in at.exception]}"


# ---- secrets fail closed ----------------------------------------------------------------------------
def test_malformed_secrets_file_closes_the_app(env, secrets_file) -> None:
    secrets_file.write_text('password = "s3cret\npublic = true\n')  # one bad line: an unterminated string
    at = start()
    no_exception(at, "malformed secrets")
    errors = [e.value for e in at.error]
    assert any("dashboard is closed" in e and "cannot be parsed" in e for e in errors), errors
    assert str(secrets_file.parent) not in texts(at), "no server path in the message"
    assert not at.sidebar.selectbox and not at.text_input, "nothing served, not even the password field"
    for page in ("generate", "privacy", "models_data"):
        visit(at, page)
        assert any("dashboard is closed" in e.value for e in at.error) and not at.sidebar.selectbox, page
    secrets_file.write_text('password = "s3cret"\npublic = true\n')  # fixed: the gate asks for the password
    at = start()
    assert at.text_input(key="password_input") is not None and not at.error


@pytest.mark.parametrize("secrets", [{"password": 1234}, {"password": ""}, {"public": "false"}, {"public": 1}])
def test_secrets_of_the_wrong_type_close_the_app(env, secrets) -> None:
    at = start(secrets=secrets)
    no_exception(at, str(secrets))
    assert any("dashboard is closed" in e.value for e in at.error), [e.value for e in at.error]
    assert not at.sidebar.selectbox


# ---- passwords -------------------------------------------------------------------------------------
def test_non_ascii_password_with_a_growing_delay(env, fake_clock) -> None:
    at = start(secrets={"password": "pässwörd✓"})
    for typed in ("wrong", "päss", "ünïcödé-wrong"):
        at.text_input(key="password_input").set_value(typed).run()
        no_exception(at, f"typed {typed!r}")
        assert any(e.value == "Wrong password." for e in at.error)
        assert not at.sidebar.selectbox
    assert fake_clock.slept == [0.5, 1.0, 2.0], "a short delay after each wrong attempt, growing"
    at.text_input(key="password_input").set_value("pässwörd✓").run()
    no_exception(at, "right password")
    assert at.sidebar.selectbox(key="selected_generator") is not None


def test_password_matches_compares_utf8_bytes() -> None:
    from dashboard.frame import password_matches

    assert password_matches("pässwörd✓", "pässwörd✓")
    assert not password_matches("passwörd", "pässwörd")
    assert not password_matches("", "x") and not password_matches("x\u0301", "x")


# ---- public mode -----------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["env", "secrets"])
def test_public_mode_takes_no_folder_input(env, monkeypatch, tmp_path, how) -> None:
    if how == "env":
        monkeypatch.setenv("SYNTHVU_PUBLIC", "1")
    secrets = {"public": True} if how == "secrets" else None
    at = start("fab-region", secrets=secrets)
    no_exception(at, "public")
    assert not [t for t in at.sidebar.text_input if t.key == "folder_input"], "no folder input in public mode"
    assert not [e for e in at.sidebar.expander if "folder" in e.label.lower()]
    # a folder smuggled into the session state (or left from before) is never listed or loaded
    other = tmp_path / "unpublished"
    fabricate_generator(other / "secret-gen", "0123456789abcdef", "secret-gen")
    at.session_state["extra_model_dirs"] = [str(other)]
    at.run()
    offered = [o.removesuffix(" (yours)") for o in at.sidebar.selectbox(key="selected_generator").options]
    assert "secret-gen" not in offered


def test_public_mode_sends_no_absolute_path(env, monkeypatch) -> None:
    monkeypatch.setenv("SYNTHVU_PUBLIC", "1")
    at = start("fab-foreign")  # its report belongs to another dataset: the message names the report file
    for page in ("overview", "privacy", "models_data"):
        visit(at, page)
        no_exception(at, page)
        grids = [d.value.to_dict() for d in (*at.dataframe, *at.table)]
        sent = texts(at) + json.dumps(grids, default=str)
        assert str(env["models"]) not in sent and str(ROOT) not in sent, page
    visit(at, "overview")
    assert any("fab-foreign/report/report.json" in w.value for w in at.warning), [w.value for w in at.warning]


def test_public_privacy_page_sends_only_aggregates(env, monkeypatch) -> None:
    monkeypatch.setenv("SYNTHVU_PUBLIC", "1")
    at = visit(start("fab-region"), "privacy")
    no_exception(at, "public privacy")
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert specs, "the ROC curves are still drawn"
    traces = [t for s in specs for t in s["data"]]
    assert not [t for t in traces if t.get("type") == "histogram"], "no per-candidate distance ratios"
    assert not [t for t in traces if "members" in t.get("name", "") and t.get("type") in ("box", "scatter", "violin")
                and len(t.get("y") or []) > 1 and t.get("mode") != "lines"], "no per-patient scores"
    closest = np.load(env["models"] / "fab-region" / "report" / "arrays.npz")["privacy/closest/distance"]
    assert f"({closest[0]:.1f})" not in texts(at), "no per-candidate distances"
    patient = [t.value for t in at.table if "patient level" in t.value.columns]
    assert patient and "AUC [95% CI]" in list(patient[0]["patient level"]), "the aggregate stays"


def test_card_text_is_plain_text(env, tmp_path, monkeypatch) -> None:
    models = tmp_path / "models"
    shutil.copytree(env["models"] / "fab-region", models / "fab-md")
    card = json.loads((models / "fab-md" / "card.json").read_text())
    card.update(name="fab ![x](http://127.0.0.1:9/pixel.png) **loud**",
                created="[click](http://127.0.0.1:9/) :material/home:")
    (models / "fab-md" / "card.json").write_text(json.dumps(card))
    monkeypatch.setenv("SYNTHVU_MODELS", str(models))
    from dashboard import loaders

    loaders._generators.clear()
    at = start()
    picker = at.sidebar.selectbox(key="selected_generator")
    picker.select_index([i for i, o in enumerate(picker.options) if o.startswith("fab ")][0]).run()
    for page in ("overview", "generate", "models_data"):
        visit(at, page)
        no_exception(at, page)
        sent = texts(at)
        assert "fab" in sent, page
        assert "![x](http" not in sent and "](http://127.0.0.1:9/)" not in sent and "**loud**" not in sent, page


# ---- reports belong to weights -----------------------------------------------------------------------
def test_stale_report_is_a_warning_not_the_models_numbers(env, tmp_path, monkeypatch) -> None:
    models = tmp_path / "models"
    shutil.copytree(env["models"] / "fab-region", models / "fab-retrained")
    card = json.loads((models / "fab-retrained" / "card.json").read_text())
    (models / "fab-retrained" / "card.json").write_text(json.dumps(dict(card, name="fab-retrained")))
    fabricate_generator(models / "w", card["dataset"]["fingerprint"], "w", seed=7)  # other weights, same card
    shutil.copy(models / "w" / "generator.safetensors", models / "fab-retrained" / "generator.safetensors")
    shutil.rmtree(models / "w")
    monkeypatch.setenv("SYNTHVU_MODELS", str(models))
    from dashboard import loaders

    loaders._generators.clear()
    at = start("fab-retrained")
    for page in ("overview", "utility", "privacy"):
        visit(at, page)
        no_exception(at, page)
        assert any("stale report" in w.value for w in at.warning), (page, [w.value for w in at.warning])
        assert not at.get("plotly_chart"), f"{page}: no figure of a stale report"
    visit(at, "overview")
    assert "0.900" not in [m.value for m in at.metric], "the old report's TRTR is not shown as this model's"


def test_report_of_an_older_evaluation_version_is_stale(env, tmp_path, monkeypatch) -> None:
    from synthvu_core.evaluation.report import REPORT_VERSION

    models = tmp_path / "models"
    shutil.copytree(env["models"] / "fab-region", models / "fab-old")
    card = json.loads((models / "fab-old" / "card.json").read_text())
    (models / "fab-old" / "card.json").write_text(json.dumps(dict(card, name="fab-old")))
    path = models / "fab-old" / "report" / "report.json"
    doc = json.loads(path.read_text())
    doc["meta"]["report_version"] = REPORT_VERSION - 1  # bootstrap CIs and power as detection, not rise
    path.write_text(json.dumps(doc))
    monkeypatch.setenv("SYNTHVU_MODELS", str(models))
    from dashboard import loaders

    loaders._generators.clear()
    at = start("fab-old")
    visit(at, "privacy")
    no_exception(at, "privacy")
    assert any(f"written by evaluation version {REPORT_VERSION - 1}" in w.value for w in at.warning)
    assert not at.get("plotly_chart")


# ---- card bounds on the Generate page ------------------------------------------------------------------
def test_out_of_bounds_card_is_one_clear_message(env, tmp_path) -> None:
    bad = tmp_path / "huge"
    fabricate_generator(bad, "0123456789abcdef", "huge")
    card = json.loads((bad / "card.json").read_text())
    (bad / "card.json").write_text(json.dumps(dict(card, latent_dim=10**9)))
    at = visit(start("fab-region"), "generate")
    at.sidebar.text_input(key="folder_input").set_value(str(bad))
    [b for b in at.sidebar.button if b.label == "Add"][0].click().run()
    no_exception(at, "huge latent_dim")
    errors = [e.value.replace("\\", "") for e in at.sidebar.error]  # shown as plain text: Markdown escaped
    assert any("latent_dim 1000000000 lies outside" in e for e in errors), errors


# ---- NIfTI download carries its positions ------------------------------------------------------------------
def test_dashboard_nifti_download_is_oriented_and_has_positions(env) -> None:
    nib = pytest.importorskip("nibabel")
    from dashboard import loaders

    model = str(env["models"] / "fab-region")
    data = loaders.export_bytes(model, loaders.weights_stamp(model), 3, "L", 0, ".zip")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert sorted(z.namelist()) == ["vus.csv", "vus.nii.gz"]
        csv = z.read("vus.csv").decode().splitlines()
        img = nib.Nifti1Image.from_bytes(__import__("gzip").decompress(z.read("vus.nii.gz")))
    assert csv[0] == "index,position,label" and [r.split(",")[1] for r in csv[1:]] == ["L"] * 3
    assert nib.aff2axcodes(img.affine) == ("R", "I", "P") and img.header.get_xyzt_units() == ("mm", "unknown")
    assert img.shape[3] == 3
