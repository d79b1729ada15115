"""The clinical commands refuse what they cannot do before any work, in one line naming the file: a generator that is
not a joint one, another dataset than its own, a table method that would fail after the VU half spent its budget,
an unreadable privacy ledger, a text grade; the evaluation skips grades the train split lacks and prints every
number with its interval (and chance level), and reads the released pair against the leaky control."""

from __future__ import annotations

import json
import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from synthvu_core.cli import main
from synthvu_core.clinical import commands
from synthvu_core.data import clinical as data_clinical
from synthvu_core.data.dataset import SplitConfig, VUDataset
from synthvu_core.errors import DataError, SelectionError, SynthVUError
from synthvu_core.evaluation import clinical
from synthvu_core.models import joint, tabular
from synthvu_core.models.registry import load_card
from synthvu_core.names import CARD_FILE, LEDGER_FILE, SYNTHETIC_TABLE_FILE
from tests.test_training import VUS, small, tiny_dataset

torch.set_num_threads(1)


def _table(n: int = 6) -> object:
    """The phantom's rows cut to the tiny dataset's levels, every grade at most 3 (the train split lacks 4 and 5)."""
    table = data_clinical.phantom_table(n, seed=0)
    grades = [data_clinical.grade_column(v) for v in VUS]
    table = table[["patient_id", "age", "sex", *grades]].copy()
    for c in grades:
        table[c] = table[c].clip(upper=3)
    return table


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A dataset folder with a clinical table, a grade-conditioned VU half trained on it (no table yet) and a joint
    generator (the same VU half and its table); tests work on copies."""
    root = tmp_path_factory.mktemp("clinical-failures")
    ds = tiny_dataset(patients=6, prefix="sub-000")
    ds.attach_clinical(_table(), "test")
    ds.save(root / "ds")
    half = joint.train_images(ds, root / "half", small(steps=1), progress=False)
    done = root / "joint"
    shutil.copytree(half, done)
    commands.write_table(done, ds, rows=20, method="ordinal_copula", seed=0)
    other = tiny_dataset(patients=6, prefix="sub-000", seed=3)  # the same patient ids, other images
    other.attach_clinical(_table(), "test")
    other.save(root / "other")
    return SimpleNamespace(ds=root / "ds", half=half, joint=done, other=root / "other")


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _edit_card(folder, **changes):
    card = json.loads((folder / CARD_FILE).read_text())
    card.update(changes)
    (folder / CARD_FILE).write_text(json.dumps(card))


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture()
def no_fit(monkeypatch):
    """Any table fit or classifier run fails the test: a refusal must come before the work."""
    def work(*a, **k):
        raise AssertionError("the work started before the refusal")

    monkeypatch.setattr(tabular, "fit_sample", work)
    monkeypatch.setattr(clinical, "grade_utility", work)
    monkeypatch.setattr(joint, "train_images", work)


# ---- 1. the generator and its dataset -------------------------------------------------------------------------------


def test_table_and_evaluate_refuse_a_generator_that_is_not_grade_conditioned(made, tmp_path, capsys, no_fit):
    folder = _copy(made.joint, tmp_path / "plain")
    _edit_card(folder, sources=["phantom", "real"], clinical=None)
    for action in ("table", "evaluate"):
        assert main(["clinical", action, str(folder), "--dataset", str(made.ds)]) == 2
        err = _one_line(capsys)
        assert str(folder / CARD_FILE) in err and "not a joint generator" in err
    assert load_card(folder).get("clinical") is None


def test_evaluate_refuses_a_vu_half_without_its_table(made, tmp_path, capsys, no_fit):
    half = _copy(made.half, tmp_path / "half")  # trained, its table not yet written: not joint
    assert not joint.is_joint(load_card(half))
    assert main(["clinical", "evaluate", str(half), "--dataset", str(made.ds)]) == 2
    err = _one_line(capsys)
    assert str(half / CARD_FILE) in err and "without its released table" in err and f"clinical table {half}" in err
    lost = _copy(made.joint, tmp_path / "lost")  # marked joint, its table deleted
    (lost / SYNTHETIC_TABLE_FILE).unlink()
    assert main(["clinical", "evaluate", str(lost), "--dataset", str(made.ds)]) == 2
    err = _one_line(capsys)
    assert str(lost / SYNTHETIC_TABLE_FILE) in err and "clinical table" in err


def test_another_dataset_is_refused_naming_both(made, tmp_path, capsys, no_fit):
    folder = _copy(made.joint, tmp_path / "j")
    before = (folder / SYNTHETIC_TABLE_FILE).read_bytes()
    own, other = VUDataset.load(made.ds).fingerprint, VUDataset.load(made.other).fingerprint
    for action in ("table", "evaluate"):
        assert main(["clinical", action, str(folder), "--dataset", str(made.other)]) == 2
        err = _one_line(capsys)
        assert own in err and other in err and str(folder / CARD_FILE) in err
    assert (folder / SYNTHETIC_TABLE_FILE).read_bytes() == before


def test_the_dataset_defaults_to_the_cards_own_never_the_demo(made, tmp_path, monkeypatch, capsys):
    import synthvu_core.data.build as build

    def demo(*a, **k):
        raise AssertionError("the demo dataset was built")

    monkeypatch.setattr(build, "demo_dataset", demo)
    folder = _copy(made.half, tmp_path / "j")
    assert main(["clinical", "table", str(folder), "--table-rows", "10"]) == 0
    assert "10 synthetic rows from 3 train patients" in capsys.readouterr().out
    assert joint.is_joint(load_card(folder)) and (folder / SYNTHETIC_TABLE_FILE).is_file()


def test_the_table_is_fitted_on_the_train_patients_of_the_cards_split(made, tmp_path, monkeypatch):
    ds = VUDataset.load(made.ds)
    seed = next(s for s in range(1, 100)
                if ds.with_split(SplitConfig(0.5, 0.25, 0.25, seed=s)).patients("train") != ds.patients("train"))
    folder = _copy(made.half, tmp_path / "j")
    card = load_card(folder)
    _edit_card(folder, dataset={**card["dataset"], "split": {**card["dataset"]["split"], "seed": seed}})
    seen, fit = [], tabular.fit_sample
    monkeypatch.setattr(tabular, "fit_sample", lambda rows, *a, **k: seen.append(list(rows["patient_id"]))
                        or fit(rows, *a, **k))
    commands.write_table(folder, ds, rows=10, method="ordinal_copula", seed=0)
    assert seen == [ds.with_split(SplitConfig(0.5, 0.25, 0.25, seed=seed)).patients("train")]


# ---- 2. the table's requirements, before the VU half is trained ---------------------------------------------------


@pytest.mark.parametrize("method, extra, named", [
    ("mst", {"bmi": 25.0}, "public bounds for the numeric columns bmi"),
    ("ordinal_copula", {"site": list("ABCDEA")}, "column 'site'"),
])
def test_train_checks_the_table_before_the_vu_half(made, tmp_path, capsys, no_fit, method, extra, named):
    ds = VUDataset.load(made.ds)
    ds.attach_clinical(ds.clinical.assign(**extra), "test")
    ds.save(tmp_path / "ds")
    argv = ["clinical", "train", "--dataset", str(tmp_path / "ds"), "--out", str(tmp_path / "m"),
            "--table-method", method]
    assert main(argv + (["--table-epsilon", "1"] if method == "mst" else [])) == 2
    assert named in _one_line(capsys)
    assert not (tmp_path / "m").exists() and not (tmp_path / "ds" / LEDGER_FILE).exists()  # no run recorded


def test_train_refuses_an_sdv_table_without_sdv_before_training(made, tmp_path, capsys, no_fit):
    try:
        import sdv  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("SDV is installed: its absence cannot be shown")
    argv = ["clinical", "train", "--dataset", str(made.ds), "--out", str(tmp_path / "m"),
            "--table-method", "gaussian_copula"]
    assert main(argv) == 2
    assert "needs SDV" in _one_line(capsys) and not (tmp_path / "m").exists()


def test_a_table_failing_after_training_leaves_the_vu_half_unmarked_and_says_how_to_finish(
        made, tmp_path, monkeypatch, capsys):
    out = tmp_path / "m"
    monkeypatch.setattr(joint, "train_images", lambda ds, o, config, progress=True: _copy(made.half, o))

    def broken(*a, **k):
        raise SynthVUError("the synthesiser failed")

    original = tabular.fit_sample
    monkeypatch.setattr(tabular, "fit_sample", broken)
    assert main(["clinical", "train", "--dataset", str(made.ds), "--out", str(out)]) == 2
    err = _one_line(capsys)
    assert "the synthesiser failed" in err and f"clinical table {out}" in err
    assert not joint.is_joint(load_card(out)) and not (out / SYNTHETIC_TABLE_FILE).exists()
    monkeypatch.setattr(tabular, "fit_sample", original)
    assert main(["clinical", "table", str(out), "--dataset", str(made.ds), "--table-rows", "10"]) == 0
    assert joint.is_joint(load_card(out)) and (out / SYNTHETIC_TABLE_FILE).is_file()


# ---- 3. the ledger before the release ------------------------------------------------------------------------------


def test_an_unreadable_ledger_is_refused_before_the_fit(made, tmp_path, monkeypatch, no_fit):
    ds_dir = _copy(made.ds, tmp_path / "ds")
    (ds_dir / LEDGER_FILE).write_text("{not json")
    folder = _copy(made.half, tmp_path / "j")
    with pytest.raises(DataError, match="unreadable privacy ledger"):
        commands.write_table(folder, VUDataset.load(ds_dir), rows=10, method="ordinal_copula", seed=0)
    assert not (folder / SYNTHETIC_TABLE_FILE).exists() and not joint.is_joint(load_card(folder))


def test_the_table_is_published_only_after_its_ledger_entry(made, tmp_path, monkeypatch):
    from synthvu_core.models import ledger

    folder = _copy(made.joint, tmp_path / "j")
    before = (folder / SYNTHETIC_TABLE_FILE).read_bytes()
    card = load_card(folder)

    def refused(*a, **k):  # the ledger turned unreadable between the check and the record
        raise DataError("privacy_ledger.json: unreadable privacy ledger")

    monkeypatch.setattr(ledger, "record", refused)
    with pytest.raises(DataError):
        commands.write_table(folder, VUDataset.load(made.ds), rows=7, method="ordinal_copula", seed=1)
    assert (folder / SYNTHETIC_TABLE_FILE).read_bytes() == before and load_card(folder) == card


# ---- 4. a grade that is text ---------------------------------------------------------------------------------------


def test_a_text_grade_is_named_by_row_and_column(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("patient_id,age,grade_L4/L5\nsub-1,50,mild\nsub-2,60,severe\n")
    with pytest.raises(DataError) as e:
        data_clinical.read_clinical_csv(path, ["sub-1", "sub-2"])
    text = str(e.value)
    assert len(text.splitlines()) == 1 and text.startswith(str(path))
    assert "row 2: grade_L4/L5 = 'mild' is not a grade 1-5" in text and "row 3: grade_L4/L5 = 'severe'" in text


def test_a_text_grade_already_in_a_table_is_named_not_a_traceback(tmp_path):
    """A dataset joined to its table before the CSV check refused text grades."""
    import pandas as pd

    units = pd.DataFrame({"patient_id": ["sub-1"], "level": ["L4/L5"]})
    ds = VUDataset(np.zeros((1, 1, 2, 2), np.uint8), units, {"fingerprint": "x"}, root=tmp_path / "ds")
    ds.clinical = pd.DataFrame({"patient_id": ["sub-1"], "grade_L4/L5": ["mild"]})
    with pytest.raises(DataError) as e:
        joint.grade_view(ds)
    assert str(e.value).startswith(str(tmp_path / "ds" / "clinical.csv"))
    assert "patient sub-1: grade_L4/L5 = 'mild' is not a grade 1-5" in str(e.value)
    with pytest.raises(DataError, match="the clinical table: patient sub-1"):
        data_clinical.vu_grades(units, ds.clinical)


# ---- 5. grades the train split lacks -------------------------------------------------------------------------------


def test_recognition_requests_only_the_grades_the_train_split_holds(made, monkeypatch):
    import synthvu_core.models.registry as registry

    ds = VUDataset.load(made.ds)
    grades = data_clinical.vu_grades(ds.units, ds.clinical)
    held = set(np.unique(grades[ds.indices("train")]))
    assert not {4, 5} & held
    monkeypatch.setattr(registry, "load_generator", lambda model: None)
    monkeypatch.setattr(joint, "sample_conditioned",
                        lambda gen, positions, grades, seed=0: np.zeros((len(grades), 1, 2, 2), np.float32))
    _, requested = commands.recognition_samples(made.joint, ds, grades, 50, 0)
    assert set(requested) == held


def test_evaluate_skips_absent_grades_and_refuses_one_grade_before_the_classifiers(made, tmp_path, monkeypatch):
    ds = VUDataset.load(made.ds)
    monkeypatch.setattr(clinical, "_anonymeter", lambda: None)
    monkeypatch.setattr(commands, "table_report", lambda *a, **k: {"fidelity": {}, "privacy": {}})
    monkeypatch.setattr(commands, "joint_attack", lambda *a, **k: {})
    monkeypatch.setattr(clinical, "grade_utility", lambda *a, **k: ({"chance": 0.5}, [None]))
    monkeypatch.setattr(clinical, "grade_recognition",
                        lambda model, images, requested, seed=0: {"chance": 1 / len(set(requested))})
    report = commands.evaluate_joint(_copy(made.joint, tmp_path / "j"), ds, n_recognition=30)
    held = sorted(int(g) for g in np.unique(data_clinical.vu_grades(ds.units, ds.clinical)[ds.indices("train")]))
    assert report["recognition"]["grades"] == held and report["recognition"]["skipped"] == [4, 5]
    assert report["recognition"]["chance"] == pytest.approx(1 / len(held))

    def work(*a, **k):
        raise AssertionError("classifiers trained before the grades were checked")

    monkeypatch.setattr(clinical, "grade_utility", work)
    ds.clinical = ds.clinical.assign(**{data_clinical.grade_column(v): 1 for v in VUS})
    with pytest.raises(SelectionError, match="at least two grades"):
        commands.evaluate_joint(_copy(made.joint, tmp_path / "k"), ds, n_recognition=30)


def test_evaluate_refuses_without_anonymeter_before_the_classifiers(made, tmp_path, monkeypatch, no_fit):
    def absent():
        raise SynthVUError("the table's privacy needs anonymeter (No module named 'anonymeter')")

    monkeypatch.setattr(clinical, "_anonymeter", absent)
    with pytest.raises(SynthVUError, match="needs anonymeter"):
        commands.evaluate_joint(_copy(made.joint, tmp_path / "j"), VUDataset.load(made.ds), n_recognition=30)


# ---- 6. what is printed ------------------------------------------------------------------------------------------


def _canned(control_caught: bool) -> dict:
    iv = [0.41234567891, 0.5987654321]
    risk = {"risk": 0.0123456789, "interval": iv}
    part = {k: dict(risk) for k in ("singling_out", "linkability", "inference")}
    privacy = {"released": {**part, "dcr": {"auc": 0.5123456, "interval": iv}, "caught": False},
               "leaky_control": {**part, "dcr": {"auc": 0.9123456, "interval": iv}, "caught": control_caught}}
    auc = {"auc": 0.5123456789, "interval": iv}
    pair = {"row": auc, "vus": auc, "joint": auc}
    return {
        "recognition": {"balanced_accuracy": 0.61234567, "interval": iv, "chance": 1 / 3, "grades": [1, 2, 3],
                        "skipped": [4, 5]},
        "utility": {"trtr": {"balanced_accuracy": 0.78234567, "interval": [0.7412345678, 0.8201234567]},
                    "tstr": {"balanced_accuracy": 0.58712345, "interval": iv}, "chance": 0.2,
                    "ratio": {"value": 0.7512345, "interval": iv}},
        "fidelity": {"age_grade": {"real": {"rho": 0.6123456, "interval": iv},
                                   "synthetic": {"rho": 0.5123456, "interval": iv}, "within_real_interval": True}},
        "privacy": privacy,
        "joint_membership": {"released": {**pair, "caught": False}, "leaky_control": {**pair, "caught": control_caught},
                             "design": "x"},
    }


@pytest.mark.parametrize("control_caught", [False, True])
def test_evaluate_prints_intervals_chance_and_reads_against_the_control(monkeypatch, capsys, control_caught):
    monkeypatch.setattr(commands, "evaluate_joint", lambda *a, **k: _canned(control_caught))
    monkeypatch.setattr(commands, "load_dataset", lambda name: None)
    assert main(["clinical", "evaluate", "m"]) == 0
    out = capsys.readouterr().out
    assert not re.search(r"\d\.\d{4,}", out)  # intervals and numbers at 3 decimals, never raw floats
    assert "TRTR 0.782 [0.741, 0.820] (chance 0.200)" in out and "TSTR 0.587 [0.412, 0.599] (chance 0.200)" in out
    assert "(chance 0.333)" in out and "grades 4, 5 skipped" in out
    released = [line for line in out.splitlines() if line.startswith(("released", "joint membership attack, released"))]
    assert len(released) == 2
    for line in released:
        assert ("reading: not caught" in line) == control_caught
        assert ("reading: inconclusive (no power)" in line) == (not control_caught)


def test_table_report_reads_the_released_table_against_the_leaky_control(monkeypatch):
    results = iter([{"caught": None}, {"caught": None}])  # caught is set by table_report

    def privacy(members, others, rows, seed=0):
        return next(results)

    monkeypatch.setattr(clinical, "table_privacy", privacy)
    monkeypatch.setattr(clinical, "table_fidelity", lambda *a, **k: {})
    monkeypatch.setattr(clinical, "caught", lambda p: False)
    table = _table(8)
    out = commands.table_report(table.iloc[:4], table.iloc[4:], table.iloc[4:])
    assert out["privacy"]["released"]["reading"] == "inconclusive (no power)"
    assert clinical.reading(False, True) == "not caught" and clinical.reading(True, False) == "caught"


def test_the_model_card_and_page_read_the_released_table_against_the_leaky_control():
    """Where the leaky control is not caught either, the card and the Clinical page say "inconclusive (no power)",
    never a bare "caught: no" that reads as cleared."""
    import copy
    from pathlib import Path

    from dashboard.clinical import readings
    from synthvu_core.modelcard import _clinical_report_lines

    shipped = Path(__file__).resolve().parents[1] / "models" / "acgan-joint-dp-phantom" / "report" / "clinical.json"
    if not shipped.is_file():
        pytest.skip("the shipped joint generator's clinical report is absent")
    rep = json.loads(shipped.read_text())
    text = "\n".join(_clinical_report_lines(rep))
    assert "released table:" in text and text.split("released table:")[1].split("\n")[0].endswith("; not caught")
    blind = copy.deepcopy(rep)
    blind["privacy"]["leaky_control"]["caught"] = False
    blind["joint_membership"]["leaky_control"]["caught"] = False
    lines = _clinical_report_lines(blind)
    released = [line for line in lines if "released" in line]
    assert len(released) == 2 and all(line.endswith("; inconclusive (no power)") for line in released), released
    assert readings(False, False) == ("inconclusive (no power)", "not caught")
    assert readings(True, False)[0] == "caught" and readings(False, True) == ("not caught", "caught")
