"""Progress of long work in the app: the evaluation reports every stage to a callback (the dashboard's
progress bar), and the dashboard's Compute report runs through it to a written report."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from evaluation_fixtures import structured_dataset


def test_evaluation_reports_each_stage_to_a_callback() -> None:
    from synthvu_core.data.dataset import SplitConfig
    from synthvu_core.evaluation.encoder import EncoderConfig
    from synthvu_core.evaluation.privacy import PrivacyConfig
    from synthvu_core.evaluation.report import EvaluationConfig, run_evaluation

    cfg = EvaluationConfig(encoder=EncoderConfig(epochs=1, width=8, embed_dim=16, min_steps=10),
                           privacy=PrivacyConfig(n_boot=50), cache=False)
    ds = structured_dataset(3, levels=("L2/L3", "L3/L4", "L4/L5"), split=SplitConfig(1, 1, 1, seed=0))
    x = ds.tensors(ds.indices("train"))
    calls: list[tuple[str, int, int]] = []
    run_evaluation(ds, x, np.zeros(len(x), dtype=np.int64), config=cfg, progress=lambda *a: calls.append(a))
    from synthvu_core.evaluation.stages import STAGES

    stages = [c[0] for c in calls]
    assert stages[0] == "context"
    for name, _ in STAGES:  # every stage is shown once, after the context
        assert name in stages and stages.index(name) > 0, stages
    assert set(stages) - {"context", "done"} == {name for name, _ in STAGES}, stages
    assert stages.index("privacy") < stages.index("controls"), "the controls wait on the privacy stage"
    done = [c[1] for c in calls]
    assert done == sorted(done) and done[-1] == calls[-1][2], "monotone, and complete at the end"


@pytest.mark.slow
def test_compute_report_button_runs_with_a_progress_bar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("streamlit")
    from fixtures.dashboard_models import fabricate
    from streamlit.testing.v1 import AppTest

    from dashboard import loaders

    world = fabricate(tmp_path / "world")
    only = tmp_path / "only"
    only.mkdir()
    shutil.copytree(world["models"] / "fab-noreport", only / "fab-noreport")
    monkeypatch.setenv("SYNTHVU_MODELS", str(only))
    monkeypatch.delenv("SYNTHVU_PUBLIC", raising=False)
    seen: list[tuple[str, int, int]] = []

    def spy(model_dir, dataset=None, progress=None):
        def both(*a):
            seen.append(a)
            progress(*a)
        from synthvu_core.evaluation.report import evaluate_generator

        evaluate_generator(Path(model_dir), dataset=dataset, progress=both, n_synthetic=200)
        loaders._report.clear()
        loaders._generators.clear()

    monkeypatch.setattr(loaders, "compute_report", spy)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=240)
    at.run()
    at.sidebar.selectbox(key="selected_generator").select(str(only / "fab-noreport")).run()
    at.text_input(key="compute_dataset").set_value(str(world["data"])).run()
    at.button(key="compute_report").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert (only / "fab-noreport" / "report" / "report.json").is_file()
    assert [s for s, _, _ in seen][:1] == ["context"] and seen[-1][1] == seen[-1][2]
