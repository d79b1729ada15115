"""Training record: the per-step log read defensively, loss curves and montages on Models & data and in
the HTML report; "no training log" for older generators."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fixtures.dashboard_models import fabricate


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return fabricate(tmp_path_factory.mktemp("trainlog-world"))


def _png(path: Path, step: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 30), step % 255, dtype=np.uint8)).save(path / f"montage_step{step:07d}.png")


def test_log_is_read_defensively(tmp_path: Path) -> None:
    from synthvu_core.models.trainlog import montages, read_log

    assert read_log(tmp_path) is None and montages(tmp_path) == []
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "log.csv").write_text(
        "step,epoch,loss_d,loss_g,vus_per_s,note\n2,0.1,1.5,0.9,300,warm\n1,0.05,2.0,x,280,\n3,0.2,1.2,1.1,,end\n")
    log = read_log(tmp_path)
    assert list(log["step"]) == [1, 2, 3], "sorted by step"
    assert np.isnan(log["loss_g"][0]) and log["loss_d"][0] == 2.0
    assert "note" not in log, "a column without numbers is left out"
    _png(tmp_path / "training", 20)
    _png(tmp_path / "training", 5)
    assert [s for s, _ in montages(tmp_path)] == [5, 20]


def test_models_page_draws_losses_and_montages_or_says_no_log(world: dict[str, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    models = tmp_path / "models"
    shutil.copytree(world["models"] / "fab-region", models / "fab-region")
    shutil.copytree(world["models"] / "fab-noreport", models / "fab-noreport")
    (models / "fab-region" / "training").mkdir(exist_ok=True)
    (models / "fab-region" / "training" / "log.csv").write_text(
        "step,loss_d,loss_g\n" + "".join(f"{s},{2 - s / 100},{1 + s / 100}\n" for s in range(1, 51)))
    for s in (25, 50):
        _png(models / "fab-region" / "training", s)
    monkeypatch.setenv("SYNTHVU_MODELS", str(models))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=60)
    at.run()
    at.sidebar.selectbox(key="selected_generator").select(str(models / "fab-region")).run()
    at.switch_page("app_pages/models_data.py").run()
    assert not at.exception, [e.value for e in at.exception]
    import json

    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert any({t.get("name") for t in s["data"]} == {"loss_d", "loss_g"} for s in specs)
    assert any("training montage at step 50" in c for img in at.image for c in img.captions)
    at.sidebar.selectbox(key="selected_generator").select(str(models / "fab-noreport")).run()
    assert any("No training log" in i.value for i in at.info)

    from dashboard import presentation
    from dashboard.frame import Selection
    from dashboard.summary import view_of
    from synthvu_core.evaluation.report import load_report
    from synthvu_core.models.registry import list_generators

    (info,) = [g for g in list_generators() if g.name == "fab-region"]
    page = presentation.report_html(Selection(info, info.card, view_of(load_report(info.path)), public=True))
    assert "Training losses" in page and page.count("alt='training montage, step") == 2
