import hashlib
import json

import numpy as np
import pytest

from synthvu_core.cli import main
from synthvu_core.evaluation.cohort import CohortTest
from synthvu_core.evaluation.report import Report, definition, save_report

WEIGHTS = b"stand-in generator weights"


def _report(weights: bytes = WEIGHTS) -> Report:
    scalars = {
        "utility.trtr.balanced_accuracy": 0.9,
        "utility.tstr.balanced_accuracy": 0.81,
        "utility.trts.balanced_accuracy": None,
        "utility.tstr_over_trtr": 0.9,
        "fidelity.frechet_distance": 1.5,
        "privacy.pairwise.pixel.auc": 0.52,
        "privacy.pairwise.pixel.auc_ci_low": 0.47,
        "privacy.pairwise.pixel.auc_ci_high": 0.57,
        "privacy.worst.auc": 0.52,
        "privacy.discriminator.pixel.auc": None,
        "dp.epsilon": None,
        **CohortTest(0.62, 0.6, 0.66, 0.3, 0.52, 0.35, 15, 10, 10).scalars(),
    }
    meta = {
        "model": "m1",
        "dataset_fingerprint": "abc",
        "n_synthetic": 10,
        "synthetic_seed": 0,
        "created": "now",
        "generator_sha256": hashlib.sha256(weights).hexdigest(),
        "missing": {"privacy.discriminator.pixel.auc": "no discriminator was kept with this generator"},
    }
    r = Report(scalars, {k: definition(k) for k in scalars}, meta, _arrays={"candidates/index": np.arange(3)})
    r.controls["independent"] = Report(
        {"privacy.pairwise.pixel.auc": 0.99}, {"privacy.pairwise.pixel.auc": "x"}, dict(meta), _arrays={}
    )
    return r


def test_report_show_table_and_json(tmp_path, capsys):
    save_report(_report(), tmp_path / "gen" / "report")
    (tmp_path / "gen" / "generator.safetensors").write_bytes(WEIGHTS)
    assert main(["report", "show", str(tmp_path / "gen")]) == 0
    out = capsys.readouterr().out
    assert (
        "TRTR 0.900" in out and "pairwise.pixel" in out and "no discriminator" in out and "control independent" in out
    )
    from synthvu_core.names import ONE_GENERATOR

    assert ONE_GENERATOR in out, "report show says its utility intervals hold one trained generator"
    assert main(["report", "show", str(tmp_path / "gen"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (
        doc["scalars"]["privacy.pairwise.pixel.auc"] == 0.52
        and doc["scalars"]["utility.trts.balanced_accuracy"] is None
    )
    assert doc["controls"]["independent"]["privacy.pairwise.pixel.auc"] == 0.99


def test_report_show_without_report_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "gen").mkdir()
    assert main(["report", "show", str(tmp_path / "gen")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no report yet" in err


def test_corrupt_report_exits_2(tmp_path, capsys):
    save_report(_report(), tmp_path / "gen" / "report")
    (tmp_path / "gen" / "report" / "report.json").write_text("[")
    assert main(["report", "show", str(tmp_path / "gen")]) == 2
    assert "report.json" in capsys.readouterr().err


def test_evaluate_unknown_model_exits_2(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope"), "--quiet"]) == 2
    assert "nope" in capsys.readouterr().err


def test_evaluate_rejects_zero_samples(tmp_path, capsys):
    (tmp_path / "gen").mkdir()
    assert main(["evaluate", str(tmp_path / "gen"), "--n-synthetic", "0"]) == 2


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys; from synthvu_core.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


@pytest.mark.slow
def test_evaluate_a_trained_generator_writes_a_loadable_report(tmp_path, capsys, monkeypatch):
    import torch
    from evaluation_fixtures import structured_dataset

    from synthvu_core.data.dataset import SplitConfig
    from synthvu_core.evaluation.report import load_report
    from synthvu_core.models.training import ArchOverrides, TrainConfig, train

    torch.set_num_threads(1)
    monkeypatch.setenv("SYNTHVU_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("synthvu_core.evaluation.release_utility.MIN_FACTOR", 1.5)  # 60 samples, 30 real train VUs
    ds = structured_dataset(12)
    ds.save(tmp_path / "ds")
    cfg = TrainConfig(
        overrides=ArchOverrides(width=4, d_width=4),
        batch_size=8,
        steps=2,
        checkpoint_every=0,
        montage_every=0,
        device="cpu",
        scheme="region",
    )
    # trained on another split of the same VUs (as the leaky control): members must follow the card
    resplit = ds.with_split(SplitConfig(0.25, 0.4, 0.35, seed=0))
    assert resplit.patients("train") != ds.patients("train")
    folder = train(resplit, tmp_path / "gen", cfg, progress=False)
    rc = main(
        ["evaluate", str(folder), "--dataset", str(tmp_path / "ds"), "--n-synthetic", "60", "--quiet", "--seed", "1"]
    )
    assert rc == 0
    assert "report written" in capsys.readouterr().out
    r = load_report(folder, expected_fingerprint=ds.fingerprint)
    assert r.meta["n_synthetic"] == 60 and r.meta["synthetic_seed"] == 1
    assert r.arrays["umap/synthetic"].shape == (60, 2)
    assert (r.scalars["privacy.discriminator.pixel.auc"] is None) == (not r.meta["discriminator_kept"])
    members = set(r.arrays["candidates/patient"][r.arrays["candidates/is_member"].astype(bool)].astype(str))
    non_members = set(r.arrays["candidates/patient"][~r.arrays["candidates/is_member"].astype(bool)].astype(str))
    assert members == set(resplit.patients("train"))
    assert non_members == set(resplit.patients("holdout"))  # every holdout patient is a non-member candidate
    assert r.meta["utility"]["n_train"] == len(ds.indices("train"))  # utility on the dataset's own split
    assert r.meta["utility"]["tstr_train_size"] == r.meta["utility"]["n_train"]
    from synthvu_core.evaluation.release_utility import PREFIX

    n_train = r.meta["utility"]["n_train"]  # the whole-set reading (its gate lowered to 1.5 times the real split)
    assert r.scalars[PREFIX + "n_synthetic"] >= 1.5 * n_train > r.meta["utility"]["tstr_train_size"]
    assert r.scalars[PREFIX + "tstr.balanced_accuracy"] is not None and PREFIX + "tstr_over_trtr" in r.scalars
    assert r.arrays["utility/release/holdout_predictions"].shape == r.arrays["utility/tstr/holdout_predictions"].shape
    assert r.scalars["utility.chance"] == pytest.approx(1 / 3)
    # a synthetic set short of some class: TSTR gets that many more VUs of the class from the generator
    from synthvu_core.evaluation.report import _tstr_top_up
    from synthvu_core.models.registry import load_generator

    need = np.bincount(ds.labels("region")[ds.indices("train")], minlength=3)
    have = np.array([0] * 2 + [2] * (need[2] + 5))  # two VUs of class 0, none of class 1, plenty of class 2
    images, labels = _tstr_top_up(load_generator(folder), have, ds, "region", ds.classes("region"), 0)
    assert np.bincount(labels, minlength=3).tolist() == [need[0] - 2, need[1], 0]
    assert images.shape == (len(labels), *ds.images.shape[1:]) and images.dtype == np.uint8
    capsys.readouterr()
    assert main(["report", "show", str(folder)]) == 0
    shown = capsys.readouterr().out
    assert "chance 0.333" in shown and "recall per class" in shown and "usefulness" in shown
    row = next(line for line in shown.splitlines() if line.strip().startswith(ds.classes("region")[0] + " "))
    assert " patients " in row and row.count("[") == 2  # each class: its holdout VUs and patients, two intervals
    assert list((tmp_path / "cache" / "encoders").glob("*.safetensors"))  # the real classifier was cached
    _check_release_amend(folder, tmp_path / "ds", capsys)
    _check_cohort_test_and_amend(folder, r, resplit, tmp_path / "ds", capsys)


def _check_release_amend(folder, ds_path, capsys):
    """`report amend` gives a report made before it the whole-synthetic-set reading evaluate makes, on the samples
    drawn again, every other number kept."""
    import shutil

    from synthvu_core.evaluation.release_utility import ARRAY_PREFIX, PREFIX
    from synthvu_core.evaluation.report import load_report, save_report

    folder = shutil.copytree(folder, folder.parent / "release-copy")  # the original goes on to the next check
    r = load_report(folder)
    made = {k: r.scalars.pop(k) for k in [k for k in r.scalars if k.startswith(PREFIX)]}
    for k in made:
        r.definitions.pop(k)
    arrays = {k: v for k, v in r.arrays.items() if not k.startswith(ARRAY_PREFIX)}
    r._arrays = arrays
    save_report(r, folder / "report")
    capsys.readouterr()
    assert main(["report", "amend", str(folder), "--dataset", str(ds_path)]) == 0
    assert "added TSTR on the whole synthetic set" in capsys.readouterr().out
    amended = load_report(folder)
    assert {k: amended.scalars[k] for k in made} == pytest.approx(made)
    assert {k: v for k, v in amended.scalars.items() if not k.startswith(PREFIX)} == r.scalars
    assert amended.meta["amended"][-1]["added"].startswith("TSTR on the whole synthetic set")
    assert main(["report", "amend", str(folder), "--dataset", str(ds_path)]) == 0
    assert "already holds TSTR on the whole synthetic set" in capsys.readouterr().out


def _check_cohort_test_and_amend(folder, r, resplit, ds_path, capsys):
    """The whole-cohort test counts every patient of the card's split, enters verdict (a), and `report amend` gives
    an older report the same test on the same samples, refusing samples that are not the ones evaluated."""
    from synthvu_core.evaluation.cohort import COHORT_FIELDS
    from synthvu_core.evaluation.report import load_report, save_report
    from synthvu_core.evaluation.verdicts import read_released_samples

    assert r.scalars["cohort.n_train_patients"] == len(resplit.patients("train"))
    assert r.scalars["cohort.n_other_patients"] == len(resplit.patients()) - len(resplit.patients("train"))
    assert r.scalars["cohort.n_samples"] == 60
    assert r.meta["verdicts"]["released_samples"]["inputs"]["cohort"]["p"] == r.scalars["cohort.p_value"]
    assert "Whole-cohort test" in r.meta["verdicts"]["released_samples"]["text"]
    assert main(["report", "show", str(folder)]) == 0 and "\ncohort      " in capsys.readouterr().out
    old = {k: r.scalars.pop(f"cohort.{k}") for k in COHORT_FIELDS}  # as a report made before the test
    for k in COHORT_FIELDS:
        r.definitions.pop(f"cohort.{k}")
    inputs = {k: v for k, v in r.meta["verdicts"]["released_samples"]["inputs"].items() if k != "cohort"}
    r.meta["verdicts"]["released_samples"] = {**read_released_samples(inputs), "inputs": inputs}
    _ = r.arrays
    save_report(r, folder / "report")
    assert main(["report", "show", str(folder)]) == 0 and "not run" in capsys.readouterr().out
    assert main(["report", "amend", str(folder), "--dataset", str(ds_path)]) == 0
    assert "largest difference 0" in capsys.readouterr().out
    amended = load_report(folder)
    assert {k: amended.scalars[f"cohort.{k}"] for k in COHORT_FIELDS} == old
    assert amended.meta["amended"][0]["added"].startswith("whole-cohort")
    assert "Whole-cohort test" in amended.meta["verdicts"]["released_samples"]["text"]
    for k in COHORT_FIELDS:  # again older, now with other samples' distances stored: refused, nothing written
        amended.scalars.pop(f"cohort.{k}")
    amended.meta["verdicts"]["released_samples"]["inputs"].pop("cohort")
    amended.meta["verdicts"]["released_samples"].update(read_released_samples(
        amended.meta["verdicts"]["released_samples"]["inputs"]))
    arrays = dict(amended.arrays)
    arrays["privacy/pairwise/pixel/d_min"] = arrays["privacy/pairwise/pixel/d_min"] + 0.01
    amended._arrays = arrays
    save_report(amended, folder / "report")
    before = (folder / "report" / "report.json").read_text()
    assert main(["report", "amend", str(folder), "--dataset", str(ds_path)]) == 2
    assert "not the ones the report evaluated" in capsys.readouterr().err
    assert (folder / "report" / "report.json").read_text() == before


@pytest.mark.parametrize("case", ["other weights", "no hash", "older evaluation"])
def test_report_show_refuses_a_report_of_other_weights(tmp_path, capsys, case):
    """A report is tied to the sha256 of the weights it evaluated: after retraining (other weights) or
    from before reports recorded it, `report show` says stale and prints none of its numbers; so it does for a
    report of an older evaluation version (other rules), which `report verify` refuses to re-run against too."""
    from synthvu_core.evaluation.report import REPORT_VERSION

    rep = _report()
    if case == "no hash":
        del rep.meta["generator_sha256"]
    if case == "older evaluation":
        rep.meta["report_version"] = REPORT_VERSION - 1
    save_report(rep, tmp_path / "gen" / "report")
    (tmp_path / "gen" / "generator.safetensors").write_bytes(WEIGHTS if case != "other weights" else b"retrained")
    gen = str(tmp_path / "gen")
    verify = [["report", "verify", gen, "--quiet"]] if case == "older evaluation" else []
    for args in [["report", "show", gen], ["report", "show", gen, "--json"], *verify]:
        assert main(args) == 2
        captured = capsys.readouterr()
        assert "stale report" in captured.err and captured.err.count("\n") == 1
        assert "0.9" not in captured.out and "0.52" not in captured.out
        if case == "older evaluation":
            assert f"written by evaluation version {REPORT_VERSION - 1}" in captured.err


def test_report_verify_passes_a_repeat_and_fails_naming_a_scalar_moved_beyond_its_tolerance(
    tmp_path, capsys, monkeypatch
):
    """`report verify` against a re-run (the evaluation stubbed by what a re-run returns): the saved report's own
    tolerance rules are read; a scalar within its tolerance passes (exit 0), one beyond fails (exit 1, named)."""
    import synthvu_core.evaluation.report as report_module
    import synthvu_core.models.registry as registry

    folder = tmp_path / "gen"
    saved = _report()
    saved.meta["tolerances"] = [["*.auc", 1e-3], ["*", 1e-9]]
    save_report(saved, folder / "report")
    (folder / "generator.safetensors").write_bytes(WEIGHTS)
    before = (folder / "report" / "report.json").read_bytes()
    rerun = {"report": _report()}

    def evaluate(copy, **kw):
        assert kw["config"].cache is False and copy != folder and not (copy / "report").exists()
        return rerun["report"]

    monkeypatch.setattr(registry, "load_card", lambda path: {"scheme": "region"})
    monkeypatch.setattr(report_module, "evaluate_generator", evaluate)
    verify = ["report", "verify", str(folder), "--dataset", str(tmp_path), "--quiet"]
    assert main(verify) == 0
    assert "reproduced" in capsys.readouterr().out
    rerun["report"].scalars["privacy.pairwise.pixel.auc"] += 5e-4  # within the saved rule for *.auc
    assert main(verify) == 0
    capsys.readouterr()
    rerun["report"].scalars["privacy.pairwise.pixel.auc"] += 0.01
    rerun["report"].controls["independent"].scalars["privacy.pairwise.pixel.auc"] -= 0.02
    assert main(verify) == 1
    out = capsys.readouterr().out
    assert "2 difference(s)" in out and "  privacy.pairwise.pixel.auc: saved 0.52" in out
    assert "controls.independent.privacy.pairwise.pixel.auc" in out
    rerun["report"] = _report()
    rerun["report"].scalars["fidelity.frechet_distance"] += 1e-6  # beyond the catch-all 1e-9
    assert main(verify) == 1 and "fidelity.frechet_distance" in capsys.readouterr().out
    assert (folder / "report" / "report.json").read_bytes() == before  # the saved report is never touched
    assert main(["report", "verify", str(folder), "--quiet"]) == 2  # no dataset in the card: the hint names verify
    assert f"synthvu_core report verify {folder} --dataset DATASET_FOLDER" in capsys.readouterr().err
    older = _report()  # made before the whole-cohort test: a re-run would add it, so amend comes first
    older.scalars = {k: v for k, v in older.scalars.items() if not k.startswith("cohort.")}
    save_report(older, folder / "report")
    assert main(verify) == 2 and "report amend" in capsys.readouterr().err
    older = _report()  # of a holdout of two sources, made before the utility per source: amend comes first
    older.meta["sources"] = {"real": {"a": 0.6, "b": 0.4}, "synthetic": {"a": 0.6, "b": 0.4}, "check_accuracy": 1.0}
    save_report(older, folder / "report")
    rerun["report"] = None  # refused before any re-run
    assert main(verify) == 2 and "predates the utility per source" in capsys.readouterr().err
    from evaluation_fixtures import structured_dataset

    structured_dataset(12).save(tmp_path / "ds")  # made before the whole-synthetic-set reading: amend comes first
    on_ds = ["report", "verify", str(folder), "--dataset", str(tmp_path / "ds"), "--quiet"]
    older = _report()
    older.meta.update(synthetic_class_counts=[2000, 2000, 1000], classes=["C", "T", "L"], scheme="region")
    save_report(older, folder / "report")
    assert main(on_ds) == 2 and "predates TSTR on the whole synthetic set" in capsys.readouterr().err
    older.meta["synthetic_class_counts"] = [2, 2, 1]  # too few samples: a re-run would not read it either
    save_report(older, folder / "report")
    rerun["report"] = _report()
    assert main(on_ds) != 2 and "predates" not in capsys.readouterr().err
    from synthvu_core.evaluation.release_utility import not_read

    older.meta.update(synthetic_class_counts=[2000, 2000, 1000], missing=not_read("amended: why not read"))
    save_report(older, folder / "report")  # the reading's reason is stored: nothing to add first
    assert main(on_ds) != 2 and "predates" not in capsys.readouterr().err


def test_report_verify_on_another_machine_reads_the_tolerance_measured_across_machines(tmp_path, capsys, monkeypatch):
    """Where the re-run's numeric environment is not the report's, a difference beyond the same-machine tolerance but
    within the across-machine one passes (exit 0, said so); beyond both it fails; unmeasured, the old rule holds."""
    import synthvu_core.evaluation.report as report_module
    import synthvu_core.evaluation.tolerance_rules as rules_module
    import synthvu_core.models.registry as registry
    from synthvu_core.evaluation.threads import numeric_environment

    folder = tmp_path / "gen"
    saved = _report()
    saved.meta["tolerances"] = [["*", 1e-9]]
    saved.meta["numerics"] = {**numeric_environment(), "cpu": "Another CPU 9000"}
    save_report(saved, folder / "report")
    (folder / "generator.safetensors").write_bytes(WEIGHTS)
    rerun = _report()
    rerun.scalars["privacy.pairwise.pixel.auc"] += 0.01
    monkeypatch.setattr(registry, "load_card", lambda path: {"scheme": "region"})
    monkeypatch.setattr(report_module, "evaluate_generator", lambda copy, **kw: rerun)
    monkeypatch.setattr(rules_module, "across_machine_tolerances", lambda: (("*.auc", 0.05), ("*", 1e-9)))
    verify = ["report", "verify", str(folder), "--dataset", str(tmp_path), "--quiet"]
    assert main(verify) == 0
    out = capsys.readouterr().out
    assert "reproduced within the tolerance measured across machines" in out and "Another CPU 9000" in out
    assert "Not checked across machines" not in out  # every rule below 0.1 (0.01 moved, 0.05 allowed)
    monkeypatch.setattr(rules_module, "across_machine_tolerances", lambda: (("*.auc", 0.5), ("*", 1e-9)))
    assert main(verify) == 0 and "Not checked across machines (they move this much between CPUs): *.auc (0.5)" in \
        capsys.readouterr().out
    monkeypatch.setattr(rules_module, "across_machine_tolerances", lambda: (("*.auc", 0.05), ("*", 1e-9)))
    rerun.scalars["privacy.pairwise.pixel.auc"] += 0.5
    assert main(verify) == 1
    assert "1 difference(s) beyond the tolerance measured across machines" in capsys.readouterr().out
    rerun.scalars["privacy.pairwise.pixel.auc"] -= 0.5
    monkeypatch.setattr(rules_module, "across_machine_tolerances", lambda: None)  # not measured: as before
    assert main(verify) == 1 and "1 difference(s) beyond tolerance" in capsys.readouterr().out
    saved.meta["numerics"] = numeric_environment()  # the report's own machine: the same-machine rule alone
    save_report(saved, folder / "report")
    monkeypatch.setattr(rules_module, "across_machine_tolerances", lambda: (("*", 1.0),))
    assert main(verify) == 1 and "beyond tolerance" in capsys.readouterr().out
    del saved.meta["numerics"]  # a report that does not say where it was made: no reason to widen the tolerance
    save_report(saved, folder / "report")
    assert main(verify) == 1 and "beyond tolerance" in capsys.readouterr().out


def test_across_machines_an_unchecked_space_may_leave_the_counted_family():
    """As measured (acgan-phantom-leaky re-run on another CPU): distribution/umap, an attack in a space the
    across-machine rules leave unchecked, left verdict (a)'s counted family. That alone is no difference across
    machines; it is one on the report's own machine, and a checked attack leaving the family is one everywhere."""
    from types import SimpleNamespace

    from synthvu_core.evaluation.commands import _counted_change
    from synthvu_core.evaluation.verify import differences

    def rep(counted):
        return SimpleNamespace(scalars={"privacy.pairwise.pixel.auc": 0.9}, controls={},
                               meta={"verdicts": {"released_samples": {"level": "leak", "counted": counted}}})

    rules = (("*privacy.*.umap.*", 0.5), ("*", 1e-9))
    saved, fresh = rep(["pairwise/pixel", "distribution/umap"]), rep(["pairwise/pixel"])
    assert differences(saved, fresh, rules, across_machines=True) == []
    assert "attacks unchecked across machines (left: distribution/umap)" in _counted_change(saved, fresh)
    assert "(entered: distribution/umap)" in _counted_change(fresh, saved)
    assert _counted_change(saved, saved) == "verdicts and counted attacks identical"
    assert len(differences(saved, fresh, rules)) == 1  # on one machine the family must repeat
    assert len(differences(rep(["pairwise/pixel"]), rep([]), rules, across_machines=True)) == 1  # a checked attack
    assert len(differences(saved, fresh, (("*", 1e-9),), across_machines=True)) == 1  # umap checked by these rules


def test_the_shipped_tolerances_file_reads():
    from synthvu_core.evaluation.tolerance_rules import across_machine_tolerances, default_tolerances

    assert default_tolerances()[-1][0] == "*"
    across = across_machine_tolerances()
    assert across is None or across[-1][0] == "*"
