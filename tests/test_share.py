"""``share MODEL --out DIR``: only whitelisted, aggregate or synthetic parts leave; a non-private
discriminator is refused; the shared folder loads in the core and on every dashboard page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures.dashboard_models import fabricate

REAL_DERIVED = ("embedding/", "umap/real", "candidates/", "privacy/closest/")
PER_CANDIDATE = ("/scores", "/patient_scores", "/ratio", "/d_min", "/nearest")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return fabricate(tmp_path_factory.mktemp("share-world"))


@pytest.fixture(scope="module")
def shared(world: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synthvu_core.share import share

    return share(world["models"] / "fab-region", tmp_path_factory.mktemp("out") / "fab-shared")


def _all_arrays(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for npz in folder.rglob("*.npz"):
        with np.load(npz, allow_pickle=False) as z:
            out.update({f"{npz.relative_to(folder)}:{k}": z[k] for k in z.files})
    return out


def test_no_real_derived_array_leaves(world: dict[str, Path], shared: Path) -> None:
    original = _all_arrays(world["models"] / "fab-region" / "report")
    real = {k: v for k, v in original.items()
            if k.split(":")[1].startswith(REAL_DERIVED) or k.endswith(PER_CANDIDATE)}
    assert any("umap/real" in k for k in real) and any(k.endswith("/scores") for k in real)  # the source has them
    leaving = _all_arrays(shared)
    assert leaving, "the public report keeps its aggregate arrays"
    for key, arr in leaving.items():
        name = key.split(":")[1]
        assert not name.startswith(REAL_DERIVED) and not name.endswith(PER_CANDIDATE), key
        for rkey, rarr in real.items():  # not even under another name
            assert not (arr.shape == rarr.shape and np.array_equal(arr, rarr)), f"{key} equals {rkey}"
    assert all(k.startswith(("utility/", "fidelity/", "privacy/", "umap/synthetic")) for k in
               (k.split(":")[1] for k in leaving))
    assert not (shared / "discriminator.safetensors").exists()
    assert not list(shared.rglob("checkpoint*"))


def test_public_report_keeps_aggregates_and_drops_unlisted_meta(world: dict[str, Path], shared: Path) -> None:
    src = json.loads((world["models"] / "fab-region" / "report" / "report.json").read_text())
    doc = json.loads((shared / "report" / "report.json").read_text())
    assert doc["scalars"] == {k: v for k, v in src["scalars"].items()}  # every scalar is an aggregate
    assert doc["meta"]["public"] is True
    assert set(doc["meta"]) - {"public"} <= set(src["meta"])
    assert doc["meta"]["utility"] == src["meta"]["utility"]  # its intervals' kind and seeds, as `report show` reads
    card = json.loads((shared / "card.json").read_text())
    assert "command" not in card["training"] and card["discriminator"]["kept"] is False
    manifest = json.loads((shared / "share.json").read_text())
    assert "discriminator.safetensors" in manifest["absent"] and "README.md" in manifest["included"]
    readme = (shared / "README.md").read_text()
    assert readme.startswith("---\n") and "Share only the generator weights" in readme


def test_shared_folder_loads_in_the_core(shared: Path) -> None:
    from synthvu_core.evaluation.report import load_report
    from synthvu_core.models.registry import load_card, load_generator

    card = load_card(shared)
    assert load_generator(shared).card["name"] == "fab-region"
    rep = load_report(shared, expected_fingerprint=card["dataset"]["fingerprint"])
    assert rep is not None and "umap/real" not in rep.arrays and "umap/synthetic" in rep.arrays
    assert rep.scalars["cohort.p_value"] == 0.2  # the whole-cohort test leaves with the verdicts it signs


def test_non_private_discriminator_is_refused_and_out_must_be_new(world: dict[str, Path], tmp_path: Path) -> None:
    from synthvu_core.errors import CheckpointError, SynthVUError
    from synthvu_core.share import share

    src = world["models"] / "fab-region"
    with pytest.raises(CheckpointError, match="without differential privacy"):
        share(src, tmp_path / "a", with_discriminator=True)
    assert not (tmp_path / "a").exists()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    with pytest.raises(SynthVUError, match="not an empty folder"):
        share(src, tmp_path / "b")


def test_private_discriminator_may_be_included(world: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    from synthvu_core.models.registry import DISCRIMINATOR_FILE
    from synthvu_core.share import share

    src = tmp_path / "dp-model"
    shutil.copytree(world["models"] / "fab-region", src)
    card = json.loads((src / "card.json").read_text())
    card["dp"] = {"epsilon": 8.0, "delta": 1e-3, "noise_multiplier": 1.1, "max_grad_norm": 1.0,
                  "accountant": "rdp", "private_module": "discriminator"}
    (src / "card.json").write_text(json.dumps(card))
    (src / DISCRIMINATOR_FILE).write_bytes((src / "generator.safetensors").read_bytes())  # any file: copied, not loaded
    (src / "training").mkdir(exist_ok=True)
    (src / "training" / "log.csv").write_text("step,loss_d,vus_per_s\n1,0.5,123.4\n2,0.4,98.7\n")
    (src / "training" / "checkpoint").mkdir(exist_ok=True)
    (src / "training" / "checkpoint" / "state.safetensors").write_bytes(b"private")
    (src / "audit.json").write_text('{"epsilon_lower_bound": 0.1}')
    out = share(src, tmp_path / "out", with_discriminator=True)
    assert (out / DISCRIMINATOR_FILE).is_file()
    assert json.loads((out / "card.json").read_text())["discriminator"]["kept"] is True
    # a DP run's per-step timing grows with the private number of sampled VUs: blanked; its checkpoint never leaves
    assert (out / "training" / "log.csv").read_text() == "step,loss_d,vus_per_s\n1,0.5,\n2,0.4,\n"
    assert not (out / "training" / "checkpoint").exists() and (out / "audit.json").is_file()
    assert "mechanism's random state" in json.loads((out / "share.json").read_text())["absent"]["training checkpoint"]
    # the run's total time grows with it too; what the bound does not cover is said in the card and its README
    shared = json.loads((out / "card.json").read_text())
    assert "seconds" not in shared["training"] and "seconds" in card["training"]
    assert "are computed on the real patients without DP and are not covered" in shared["dp"]["not_covered"]
    assert "- The DP bound: it covers the weights" in (out / "README.md").read_text()


def test_share_cli_prints_what_is_left_out(
    world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from synthvu_core.cli import main

    assert main(["share", str(world["models"] / "fab-region"), "--out", str(tmp_path / "s")]) == 0
    assert "left out real-derived report arrays" in capsys.readouterr().out
    assert (
        main(["share", str(world["models"] / "fab-region"), "--out", str(tmp_path / "t"), "--with-discriminator"]) == 2
    )


def test_dashboard_loads_a_shared_folder_and_says_what_is_absent(shared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SYNTHVU_MODELS", str(shared))
    monkeypatch.delenv("SYNTHVU_PUBLIC", raising=False)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=60)
    at.run()
    picker = at.sidebar.selectbox(key="selected_generator")
    picker.select(str(shared)).run()
    for page in ("overview", "embeddings", "utility", "privacy", "tradeoffs", "models_data"):
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, f"{page}: {[e.value for e in at.exception]}"
        notes = [i.value for i in at.info if "Shared generator folder" in i.value]
        assert notes and "discriminator.safetensors" in notes[0] and "real-derived report arrays" in notes[0], page


def test_public_mode_holds_only_what_share_lets_leave(world: dict[str, Path]) -> None:
    """Public mode reads a report through the same whitelist (real UMAP coordinates kept for the density only)."""
    from dashboard.summary import public_view, view_of
    from synthvu_core.evaluation.report import load_report
    from synthvu_core.share import PUBLIC_MODE_DENSITY, public_array

    full = view_of(load_report(world["models"] / "fab-region"))
    assert [k for k in full.arrays if k.endswith(PER_CANDIDATE)]
    view = public_view(full)
    assert view.arrays and all(public_array(k) or k in PUBLIC_MODE_DENSITY for k in view.arrays)
    for name, control in view.controls.items():
        assert all(public_array(k) or k in PUBLIC_MODE_DENSITY for k in control.arrays), name
    assert view.scalars == full.scalars


def test_only_the_named_public_prior_ships_its_non_private_discriminator(
    world: dict[str, Path], tmp_path: Path
) -> None:
    """A card named like the public prior is not enough: its dataset must be the one the whitelist names."""
    import shutil

    from synthvu_core.errors import CheckpointError
    from synthvu_core.share import PUBLIC_PRIORS, share

    folder = tmp_path / "prior"
    shutil.copytree(world["models"] / "fab-region", folder)
    (folder / "discriminator.safetensors").write_bytes(b"weights")  # share copies it as it is
    card = json.loads((folder / "card.json").read_text())
    card["name"] = "acgan-phantom"
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="membership oracle"):
        share(folder, tmp_path / "a", with_discriminator=True)
    card["dataset"]["fingerprint"] = PUBLIC_PRIORS["acgan-phantom"][0]
    (folder / "card.json").write_text(json.dumps(card))
    out = share(folder, tmp_path / "b", with_discriminator=True)
    assert (out / "discriminator.safetensors").is_file()
    assert "phantom" in json.loads((out / "share.json").read_text())["included"][2]
