"""Clinical tables: the phantom's ground truth, `data build --clinical` validation (bad rows, unknown ids, mixed
types), nothing written on a refused table, and the table travelling with the dataset folder."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_volumes import write_spine

from synthvu_core.cli import main
from synthvu_core.data import clinical
from synthvu_core.data.dataset import VUDataset
from synthvu_core.errors import DataError


@pytest.fixture()
def cohort(tmp_path):
    folder = tmp_path / "vols"
    for i, codes in enumerate([(20, 21, 22, 23, 24), (21, 22, 23), (19, 20, 21), (20, 21, 22, 23, 24)]):
        write_spine(folder, f"sub-{i:02d}", codes=codes, suffix=".nii")
    return folder


def _build(cohort, out, table):
    return ["data", "build", "--images", str(cohort), "--out", str(out), "--workers", "1", "--image-glob",
            "*_img.nii", "--label-glob", "*_vert.nii", "--slices", "3", "--size", "16", "--clinical", str(table)]


GOOD = ("patient_id,age,sex,grade_L3/L4,grade_L4/L5\n"
        "sub-00,61,F,2,4\n"
        "sub-01,45,M,1,\n"
        "sub-03,70,F,3,5\n")


def test_phantom_rows_follow_the_ground_truth():
    from synthvu_core.data import phantom

    row = clinical.phantom_row(3, seed=0)
    params, _ = phantom._draw_patient(3, 0, "T2")
    assert row["age"] == params.age and row["sex"] == params.sex
    assert row["grade_L4/L5"] == clinical.grade_of(params.degeneration[21])
    assert sum(k.startswith("grade_") for k in row) == 23
    assert row["findings"] == (";".join(f"{f.kind}@{f.level}" for f in params.findings) or "none")
    assert [clinical.grade_of(x) for x in (0.0, 0.19, 0.2, 0.5, 0.79, 0.8, 1.0)] == [1, 1, 2, 3, 4, 5, 5]


def test_phantom_grades_grow_with_age():
    from scipy.stats import spearmanr

    table = clinical.phantom_table(60, seed=0)
    assert spearmanr(table["age"], table["grade_L4/L5"]).statistic > 0.4


def test_build_joins_a_good_table(cohort, tmp_path):
    (tmp_path / "c.csv").write_text(GOOD)
    assert main(_build(cohort, tmp_path / "ds", tmp_path / "c.csv")) == 0
    ds = VUDataset.load(tmp_path / "ds")
    assert ds.card["clinical"]["columns"] == {"age": "numeric", "sex": "categorical", "grade_L3/L4": "per_level",
                                              "grade_L4/L5": "per_level"}
    assert list(ds.clinical["patient_id"]) == ["sub-00", "sub-01", "sub-03"]
    grades = clinical.vu_grades(ds.units, ds.clinical)
    at = dict(zip(zip(ds.units["patient_id"], ds.units["level"]), grades))
    assert at[("sub-00", "L4/L5")] == 4 and at[("sub-01", "L3/L4")] == 1 and at[("sub-02", "L1/L2")] == 0


@pytest.mark.parametrize("text, named", [
    (GOOD + "sub-99,50,F,1,1\n", ["row 5", "'sub-99' is not in the dataset"]),
    (GOOD + "sub-00,50,F,1,1\n", ["row 5 repeats patient 'sub-00' of row 2"]),
    (GOOD + "sub-02,50,F,1\n", ["row 5 has 4 fields, the header 5"]),
    (GOOD + "sub-02,fifty,F,1,1\n", ["column 'age' mixes numbers and text", "row 5: 'fifty'"]),
    (GOOD + "sub-02,50,F,7,1\n", ["row 5: grade_L3/L4 = '7' is not a grade 1-5"]),
    (GOOD + "sub-02,50,F,mild,1\n", ["row 5: grade_L3/L4 = 'mild' is not a grade 1-5"]),
    ("patient_id,grade_L4/L5\nsub-00,mild\nsub-01,\n", ["row 2: grade_L4/L5 = 'mild' is not a grade 1-5"]),
    ("patient_id,grade_L4/S9\nsub-00,1\n", ["'L4/S9', which is not a VU"]),
    ("id,age\nsub-00,1\n", ["no 'patient_id' column"]),
])
def test_bad_tables_are_named_and_nothing_is_written(cohort, tmp_path, capsys, text, named):
    (tmp_path / "c.csv").write_text(text)
    assert main(_build(cohort, tmp_path / "ds", tmp_path / "c.csv")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "c.csv" in err
    for n in named:
        assert n in err
    assert not (tmp_path / "ds").exists()
    assert not list(tmp_path.glob(".ds.tmp-*"))


def test_every_problem_is_listed_in_one_error(tmp_path):
    (tmp_path / "c.csv").write_text("patient_id,age\nsub-9,1\nsub-8,x\n")
    with pytest.raises(DataError) as e:
        clinical.read_clinical_csv(tmp_path / "c.csv", ["sub-1"])
    assert "3 problem(s)" in str(e.value) and "'sub-9'" in str(e.value) and "'sub-8'" in str(e.value)


def test_dataset_table_falls_back_to_the_phantom_recipe():
    ds = VUDataset(np.zeros((1, 1, 2, 2), np.uint8), __import__("pandas").DataFrame({"patient_id": ["sub-0000"]}),
                   {"recipe": {"n_patients": 2, "seed": 0, "contrast": "T2"}})
    assert list(clinical.dataset_table(ds)["patient_id"]) == ["sub-0000", "sub-0001"]
    ds.card = {}
    with pytest.raises(DataError, match="no clinical table"):
        clinical.dataset_table(ds)
