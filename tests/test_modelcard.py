"""Human-readable model cards: Hugging Face layout (YAML metadata, then sections), numbers from the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.dashboard_models import fabricate

SECTIONS = ("## Intended use", "## Training data", "## Privacy unit and (epsilon, delta)", "## Training",
            "## Evaluation", "## Limitations", "## Sharing")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return fabricate(tmp_path_factory.mktemp("card-world"))


def _front_matter(text: str) -> dict:
    yaml = pytest.importorskip("yaml")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_card_from_report_has_sections_metadata_and_intervals(world: dict[str, Path]) -> None:
    from synthvu_core import modelcard

    folder = world["models"] / "fab-region"
    text = modelcard.render(folder)
    meta = _front_matter(text)
    assert meta["library_name"] == "synthvu" and "synthetic-data" in meta["tags"]
    scalars = json.loads((folder / "report" / "report.json").read_text())["scalars"]
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics["utility.tstr.balanced_accuracy"] == pytest.approx(
        scalars["utility.tstr.balanced_accuracy"], abs=1e-4
    )
    positions = [text.index(f"\n{s}\n") for s in SECTIONS]
    assert positions == sorted(positions)
    lo, hi = scalars["privacy.pairwise.pixel.auc_ci_low"], scalars["privacy.pairwise.pixel.auc_ci_high"]
    assert f"{scalars['privacy.pairwise.pixel.auc']:.3f} [{lo:.3f}, {hi:.3f}]" in text
    assert "without differential privacy" in text and "Share only the generator weights" in text
    from synthvu_core.names import ONE_GENERATOR

    assert ONE_GENERATOR in text, "the card says its utility intervals hold one trained generator"


def test_card_without_report_says_not_measured_and_dp_card_names_epsilon(
    world: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    from synthvu_core import modelcard

    text = modelcard.render(world["models"] / "fab-noreport")
    assert "not measured" in text and "model-index" not in _front_matter(text)
    src = tmp_path / "dp"
    shutil.copytree(world["models"] / "fab-noreport", src)
    card = json.loads((src / "card.json").read_text())
    card["dp"] = {
        "epsilon": 7.5,
        "delta": 1e-4,
        "noise_multiplier": 1.2,
        "max_grad_norm": 1.0,
        "accountant": "rdp",
        "unit": "patient",
    }
    (src / "card.json").write_text(json.dumps(card))
    text = modelcard.render(src)
    assert "epsilon = 7.50 at delta = 0.0001" in text and "one **patient**" in text
    assert "differential-privacy" in _front_matter(text)["tags"]


def test_card_of_a_stale_report_says_so_names_its_version_and_quotes_no_number(
    world: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    from synthvu_core import modelcard
    from synthvu_core.records import REPORT_VERSION

    src = tmp_path / "stale"
    shutil.copytree(world["models"] / "fab-region", src)
    path = src / "report" / "report.json"
    doc = json.loads(path.read_text())
    doc["meta"]["report_version"] = REPORT_VERSION - 1
    path.write_text(json.dumps(doc))
    text = modelcard.render(src)
    section = text.split("## Evaluation")[1].split("## Limitations")[0]
    assert f"written by evaluation version {REPORT_VERSION - 1}" in section
    assert f"current evaluation is version {REPORT_VERSION}" in section and "not quoted" in section
    assert "python -m synthvu_core evaluate fab-region --controls" in section
    assert "No evaluation report" not in text and "model-index" not in _front_matter(text)
    tstr = doc["scalars"]["utility.tstr.balanced_accuracy"]
    assert f"{tstr:.3f}" not in section


def test_models_card_command_writes_readme(world: dict[str, Path], tmp_path: Path) -> None:
    from synthvu_core.cli import main

    out = tmp_path / "README.md"
    assert main(["models", "card", str(world["models"] / "fab-region"), "--out", str(out)]) == 0
    assert out.read_text().startswith("---\n")
    assert main(["models", "card"]) == 2  # neither MODEL nor --all


def test_shipped_generators_ship_their_cards() -> None:
    from synthvu_core import modelcard
    from synthvu_core.models.registry import list_generators

    shipped = [g for g in list_generators() if g.source == "shipped"]
    for g in shipped:
        readme = g.path / modelcard.README_FILE
        assert readme.is_file(), f"{g.name}: no README.md (python -m synthvu_core models card --all)"
        assert readme.read_text() == modelcard.render(g.path), f"{g.name}: README.md is stale (models card --all)"


def test_card_words_follow_the_data_and_name_the_controls_numbers() -> None:
    """A real-data card never calls its generator phantom-trained; controls with numbers are never 'not measured';
    the sampling example asks for a position the generator has."""
    from synthvu_core import modelcard

    root = Path(__file__).resolve().parents[1] / "models"
    real, phantom = root / "acgan-spine-mri", root / "acgan-phantom"
    if not (real / "report" / "controls").is_dir() or not phantom.is_dir():
        pytest.skip("shipped generators absent")
    text = modelcard.render(real)
    assert "phantom-trained" not in text and "Trained on real scans" in text
    controls = [line for line in text.splitlines() if line.startswith("Control *")]
    measured = sorted(d.name for d in (real / "report" / "controls").iterdir() if d.is_dir())
    assert len(controls) == len(measured) and not any("not measured" in line for line in controls), controls
    scalars = json.loads((real / "report" / "controls" / "independent" / "report.json").read_text())["scalars"]
    aucs = {k: v for k, v in scalars.items()
            if k.startswith("privacy.") and k.endswith(".auc") and not k.startswith("privacy.worst.") and v is not None}
    top = max(aucs, key=lambda k: aucs[k])
    attack, space = top.split(".")[1:3]
    line = f"Control *independent*: highest attack AUC {aucs[top]:.3f} ({attack} attack, {space} space)."
    assert line in controls, (line, controls)
    card = json.loads((real / "card.json").read_text())
    assert f"--position {card['classes'][-1]} " in text
    assert "phantom-trained generator says nothing about real anatomy" in modelcard.render(phantom)


def test_card_says_whether_the_split_was_stratified() -> None:
    from synthvu_core import modelcard

    card = {"scheme": "level", "classes": ["L1/L2"], "shape": [9, 64, 64],
            "dataset": {"split": {"train": 0.6, "holdout": 0.2, "reference": 0.2, "seed": 2}}}
    plain = "\n".join(modelcard._data_section(card))
    assert "(seed 2); only the train part" in plain and "stratified" not in plain
    card["dataset"]["split"]["stratify"] = True
    assert "(seed 2, stratified by source and levels); only" in "\n".join(modelcard._data_section(card))
