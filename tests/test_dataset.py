"""VUDataset: patient-wise seeded split, fingerprint, atomic save, clean failures, montage."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthvu_core.data import dataset as dsmod
from synthvu_core.data.dataset import SplitConfig, VUDataset, assign_split, montage, to_float, to_uint8, write_montage
from synthvu_core.errors import DataError, ReportError, SelectionError


def _units(n_patients=10, per=3, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n_patients * per, 3, 8, 8), dtype=np.uint8)
    levels_ = ["L1/L2", "L2/L3", "T12/L1"]
    rows = [
        {
            "patient_id": f"p{p:02d}",
            "level": levels_[k % 3],
            "region": levels_[k % 3][0],
            "source": f"p{p:02d}_img.nii.gz",
            "center_vox_0": 0.0,
            "center_vox_1": 0.0,
            "center_vox_2": 0.0,
            "center_world_x": 0.0,
            "center_world_y": 0.0,
            "center_world_z": 0.0,
            "spacing_mm": 1.0,
            "slice_mm": 2.0,
            "crop_mm": 64.0,
        }
        for p in range(n_patients)
        for k in range(per)
    ]
    return images, pd.DataFrame(rows)


def test_split_is_patient_wise_seeded_and_complete():
    images, units = _units()
    ds = VUDataset.from_units(images, units, split=SplitConfig(0.6, 0.2, 0.2, seed=3))
    parts = {p: set(ds.units.loc[ds.indices(p), "patient_id"]) for p in ("train", "holdout", "reference")}
    assert [len(v) for v in parts.values()] == [6, 2, 2]
    assert not (parts["train"] & parts["holdout"]) and not (parts["train"] & parts["reference"])
    assert sum(len(ds.indices(p)) for p in parts) == len(ds)
    again = VUDataset.from_units(images, units, split=SplitConfig(0.6, 0.2, 0.2, seed=3))
    assert again.card["split"] == ds.card["split"]
    other = assign_split(units["patient_id"].tolist(), SplitConfig(seed=4))
    assert other != assign_split(units["patient_id"].tolist(), SplitConfig(seed=3))
    assert ds.fingerprint == again.fingerprint  # the split is not part of the fingerprint
    with pytest.raises(SelectionError):
        ds.indices("test")


def test_uint8_round_trip_within_half_level():
    x = np.linspace(-1, 1, 1001, dtype=np.float32)
    assert np.abs(to_float(to_uint8(x)) - x).max() <= 0.5 / 127.5 + 1e-6


def test_save_load_round_trip(tmp_path):
    images, units = _units()
    ds = VUDataset.from_units(images, units)
    ds.save(tmp_path / "ds")
    back = VUDataset.load(tmp_path / "ds")
    assert back.fingerprint == ds.fingerprint and isinstance(back.images, np.memmap)
    np.testing.assert_array_equal(back.images, images)
    assert back.classes("region") == ["T", "L"] and back.classes("level") == ["T12/L1", "L1/L2", "L2/L3"]
    assert back.labels("region").tolist() == [1, 1, 0] * 10
    assert back.card["counts"]["per_level"] == {"T12/L1": 10, "L1/L2": 10, "L2/L3": 10}


def test_interrupted_save_keeps_the_old_dataset(tmp_path, monkeypatch):
    images, units = _units()
    old = VUDataset.from_units(images, units)
    old.save(tmp_path / "ds")
    new = VUDataset.from_units(images[::-1].copy(), units)
    calls = {"n": 0}
    real_save = np.save

    def failing_save(path, arr, *a, **k):  # writes half a file, then the disk "fills up"
        calls["n"] += 1
        real_save(path, arr[: len(arr) // 2], *a, **k)
        raise OSError("no space left on device")

    monkeypatch.setattr(dsmod.np, "save", failing_save)
    with pytest.raises(OSError):
        new.save(tmp_path / "ds")
    with pytest.raises(OSError):
        new.save(tmp_path / "fresh")
    monkeypatch.undo()
    assert calls["n"] == 2
    assert VUDataset.load(tmp_path / "ds").fingerprint == old.fingerprint
    assert not (tmp_path / "fresh").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary left behind


def test_half_written_folder_fails_cleanly(tmp_path):
    images, units = _units()
    VUDataset.from_units(images, units).save(tmp_path / "ds")
    (tmp_path / "ds" / "card.json").unlink()
    with pytest.raises(DataError, match="card.json is missing"):
        VUDataset.load(tmp_path / "ds")
    with pytest.raises(DataError, match="no VU dataset"):
        VUDataset.load(tmp_path / "nothing")


def test_truncated_images_fail_cleanly(tmp_path):
    images, units = _units()
    VUDataset.from_units(images, units).save(tmp_path / "ds")
    f = tmp_path / "ds" / "images.npy"
    f.write_bytes(f.read_bytes()[:200])
    with pytest.raises(DataError, match="ds"):
        VUDataset.load(tmp_path / "ds")


def test_from_units_rejects_empty_and_incomplete_tables():
    images, units = _units()
    with pytest.raises(DataError, match="no vertebral units"):
        VUDataset.from_units(images[:0], units.iloc[:0])
    with pytest.raises(DataError, match="crop_mm"):
        VUDataset.from_units(images, units.drop(columns=["crop_mm"]))


def test_montage_one_row_per_picked_vu(tmp_path):
    images, units = _units()
    ds = VUDataset.from_units(images, units)
    pic = montage(ds, per_level=2, scale=1)
    c, h, w = ds.shape
    assert pic.dtype == np.uint8 and pic.shape[0] == 3 * 2 * (h + 2) + 2  # 3 levels x 2 VUs
    assert pic.shape[1] > c * w
    write_montage(ds, tmp_path / "m.png", per_level=1)
    from PIL import Image

    assert Image.open(tmp_path / "m.png").size[1] == 3 * (2 * h + 2) + 2


def test_with_split_resplits_patients_keeps_fingerprint_and_nests_train():
    import numpy as np
    import pandas as pd

    from synthvu_core.data.dataset import SplitConfig, VUDataset

    n_pat, per = 40, 3
    rows = [
        {
            "patient_id": f"p{p:02d}",
            "level": "L4/L5",
            "region": "L",
            "source": f"p{p:02d}.nii.gz",
            **{
                c: 0.0
                for c in (
                    "center_vox_0",
                    "center_vox_1",
                    "center_vox_2",
                    "center_world_x",
                    "center_world_y",
                    "center_world_z",
                    "spacing_mm",
                    "slice_mm",
                    "crop_mm",
                )
            },
        }
        for p in range(n_pat)
        for _ in range(per)
    ]
    images = np.random.default_rng(0).integers(0, 255, (len(rows), 1, 8, 8), dtype=np.uint8)
    ds = VUDataset.from_units(images, pd.DataFrame(rows), split=SplitConfig(0.6, 0.2, 0.2, seed=3))
    small = ds.with_split(SplitConfig(0.1, 0.45, 0.45, seed=3))
    assert small.fingerprint == ds.fingerprint
    assert len(small.patients("train")) == 4
    # same seed: the smaller train part is drawn from the front of the same permutation
    assert set(small.patients("train")) < set(ds.patients("train"))
    parts = [set(small.patients(p)) for p in ("train", "holdout", "reference")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert small.card["counts"]["per_split"]["train"]["units"] == 4 * per
    assert ds.with_split(ds.split_config()) is ds


def test_tile_montage_layout():
    from synthvu_core.data.dataset import tile_montage

    tiles = np.arange(5 * 2 * 3, dtype=np.uint8).reshape(5, 2, 3) + 1  # 5 tiles 2x3, no zero pixel
    out = tile_montage(tiles, 3, gap=1, margin=2, fill=0, zoom=2)
    # 2 rows of 3 (the last short), tiles 4x6 after zoom, 1-pixel gaps, 2-pixel margin
    assert out.shape == (2 * 4 + 1 + 4, 3 * 6 + 2 + 4)
    assert (out[:2] == 0).all() and (out[:, :2] == 0).all()
    assert np.array_equal(out[2:6, 2:8], np.repeat(np.repeat(tiles[0], 2, 0), 2, 1))
    assert np.array_equal(out[7:11, 9:15], np.repeat(np.repeat(tiles[4], 2, 0), 2, 1))  # row 1, column 1
    assert (out[7:11, 16:22] == 0).all()  # the empty sixth place
    floats = np.linspace(-1, 1, 12, dtype=np.float32).reshape(2, 2, 3)
    assert np.array_equal(tile_montage(floats, 2, gap=0, margin=0), np.hstack(list(to_uint8(floats))))


def _two_site_units(n_rare=5, n_common=20):
    """``n_rare`` patients of site "b" with two extra thoracic levels, ``n_common`` of site "a" without."""
    rows = []
    for p in range(n_rare + n_common):
        site, extra = ("b", ["T11/T12", "T12/L1"]) if p < n_rare else ("a", [])
        for level in ["L1/L2", "L2/L3", *extra]:
            rows.append({"patient_id": f"p{p:02d}", "level": level, "site": site})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", range(6))
def test_a_stratified_split_gives_every_stratum_its_share_of_every_part(seed):
    units = _two_site_units()
    strata = dsmod.patient_strata(units)
    assert strata["p00"] == "b|L1/L2,L2/L3,T11/T12,T12/L1" and strata["p24"] == "a|L1/L2,L2/L3"
    parts = assign_split(units["patient_id"].tolist(), SplitConfig(seed=seed), strata)
    rare = [parts[f"p{p:02d}"] for p in range(5)]
    assert sorted(rare) == ["holdout", "reference", "train", "train", "train"]  # 3 : 1 : 1 of 5, every seed
    assert [list(parts.values()).count(k) for k in ("train", "holdout", "reference")] == [15, 5, 5]
    plain = assign_split(units["patient_id"].tolist(), SplitConfig(seed=seed, stratify=False), strata)
    assert [list(plain.values()).count(k) for k in ("train", "holdout", "reference")] == [15, 5, 5]


@pytest.mark.parametrize("seed", range(4))
def test_a_smaller_train_share_trains_on_a_subset_of_the_train_patients(seed):
    units = _two_site_units()
    strata = dsmod.patient_strata(units)
    full = assign_split(list(strata), SplitConfig(seed=seed), strata)
    for ratios in ((0.25, 0.5, 0.25), (0.05, 0.475, 0.475), (0.4, 0.3, 0.3)):
        small = assign_split(list(strata), SplitConfig(*ratios, seed=seed), strata)
        assert {p for p, part in small.items() if part == "train"} <= {p for p, part in full.items() if part == "train"}


def test_one_stratum_splits_as_a_plain_permutation_and_old_cards_keep_theirs():
    images, units = _units(n_patients=25)
    one = dsmod.patient_strata(units)
    assert len(set(one.values())) == 1
    for seed in range(3):  # the phantom's case: stratifying changes nothing
        assert assign_split(list(one), SplitConfig(seed=seed), one) == assign_split(
            list(one), SplitConfig(seed=seed, stratify=False))
    two = _two_site_units()
    strata = dsmod.patient_strata(two)
    old_card = {"train": 0.6, "holdout": 0.2, "reference": 0.2, "seed": 2}  # written before strata existed
    old = SplitConfig.from_card(old_card)
    assert old is not None and not old.stratify
    assert assign_split(list(strata), old, strata) == assign_split(list(strata), SplitConfig(seed=2, stratify=False))
    assert assign_split(list(strata), old, strata) != assign_split(list(strata), SplitConfig(seed=2), strata)
    assert SplitConfig.from_card({**old_card, "stratify": True}) == SplitConfig(seed=2)


def test_with_split_reproduces_the_split_a_generator_card_names():
    images, units = _units(n_patients=25)
    units["site"] = np.where(units["patient_id"] < "p05", "b", "a")
    ds = VUDataset.from_units(images, units, split=SplitConfig(seed=1))
    assert ds.card["split"]["stratify"] is True and ds.split_strata() is not None
    b_parts = ds.units.loc[ds.units["site"] == "b"].drop_duplicates("patient_id")["split"].tolist()
    assert sorted(b_parts) == ["holdout", "reference", "train", "train", "train"]
    assert ds.with_split(SplitConfig(seed=1)) is ds
    old = ds.with_split(SplitConfig.from_card({"train": 0.6, "holdout": 0.2, "reference": 0.2, "seed": 1}))
    assert old.card["split"]["stratify"] is False and old.split_strata() is None
    plain = assign_split(units["patient_id"].tolist(), SplitConfig(seed=1, stratify=False))
    assert dict(zip(old.units["patient_id"], old.units["split"], strict=True)) == plain


def test_a_generator_trained_before_strata_is_evaluated_on_its_own_split_throughout():
    from synthvu_core.evaluation.report import evaluation_datasets

    images, units = _units(n_patients=25)
    units["site"] = np.where(units["patient_id"] < "p05", "b", "a")
    built = VUDataset.from_units(images, units, split=SplitConfig(seed=1))  # stratified, as data build now splits
    old_card = {"dataset": {"fingerprint": built.fingerprint,
                            "split": {"train": 0.6, "holdout": 0.2, "reference": 0.2, "seed": 1}}}
    members, utility = evaluation_datasets(Path("gen"), old_card, built)
    plain = assign_split(units["patient_id"].tolist(), SplitConfig(seed=1, stratify=False))
    for ds in (members, utility):  # the holdout never holds a patient the generator was trained on
        assert dict(zip(ds.units["patient_id"], ds.units["split"], strict=True)) == plain
    new_card = {"dataset": {"fingerprint": built.fingerprint, "split": {**old_card["dataset"]["split"],
                                                                          "stratify": True}}}
    members, utility = evaluation_datasets(Path("gen"), new_card, built)
    assert members is built and utility is built
    fewer_split = {"train": 0.25, "holdout": 0.5, "reference": 0.25, "seed": 1, "stratify": True}
    fewer = {"dataset": {"fingerprint": built.fingerprint, "split": fewer_split}}
    members, utility = evaluation_datasets(Path("gen"), fewer, built)  # fewer training patients (leaky control)
    assert utility is built and members is not built
    assert set(members.units.loc[members.units["split"] == "train", "patient_id"]).isdisjoint(
        built.units.loc[built.units["split"] == "holdout", "patient_id"])
    elsewhere = {"dataset": {"fingerprint": built.fingerprint, "split": {**fewer_split, "seed": 4}}}
    with pytest.raises(ReportError, match="trained on .* of the dataset's holdout"):
        evaluation_datasets(Path("gen"), elsewhere, built)  # another seed's train patients sit in this holdout


def _units_of(patients_per_level: dict[str, list[tuple[str, str]]], split: str = "train") -> pd.DataFrame:
    rows = [{"patient_id": p, "level": lev, "site": site, "split": split}
            for lev, members in patients_per_level.items() for p, site in members]
    return pd.DataFrame(rows)


def test_thin_levels_name_levels_with_few_training_patients_in_anatomical_order():
    five = [(f"m{i}", "b") for i in range(5)]
    units = pd.concat([
        _units_of({"L4/L5": five, "L1/L2": five[:4], "T11/T12": [("c0", "a"), ("c1", "a"), ("c2", "a")],
                   "T12/L1": [("c0", "a"), ("m0", "b")]}),
        _units_of({"L2/L3": [("h0", "b")]}, split="holdout"),  # not a training level: never named
    ], ignore_index=True)
    thin = dsmod.thin_levels(units)
    assert list(thin) == ["T11/T12", "T12/L1", "L1/L2"]
    assert thin["T11/T12"] == (3, ["a"]) and thin["T12/L1"] == (2, ["a", "b"]) and thin["L1/L2"] == (4, ["b"])
    line = dsmod.thin_level_warning(units)
    assert "T11/T12 (3, all a), T12/L1 (2), L1/L2 (4, all b)" in line and "L4/L5" not in line
    assert dsmod.thin_level_warning(_units_of({"L4/L5": five})) is None
    only = dsmod.thin_level_warning(units, classes=["L1/L2", "L4/L5"])  # a run of these classes: only they count
    assert "L1/L2 (4, all b)" in only and "T11/T12" not in only and "T12/L1" not in only


def test_holdout_levels_unread_name_training_levels_whose_recall_gets_no_interval():
    two = [("h0", "b"), ("h1", "b")]
    units = pd.concat([
        _units_of({"L4/L5": [("m0", "b")], "L1/L2": [("m0", "b")], "T11/T12": [("c0", "a")],
                   "L2/L3": [("m0", "b")]}),
        _units_of({"L4/L5": two, "L1/L2": [("h0", "b")], "T12/L1": [("h2", "a")]}, split="holdout"),
        _units_of({"T11/T12": two}, split="reference"),  # the reference part does not read recall
    ], ignore_index=True)
    unread = dsmod.holdout_levels_unread(units)
    assert unread == {"T11/T12": 0, "L1/L2": 1, "L2/L3": 0}  # T12/L1 is not trained: not named; L4/L5 has 2
    assert list(unread) == ["T11/T12", "L1/L2", "L2/L3"]
    assert dsmod.holdout_levels_unread(units, classes=["L4/L5", "L1/L2"]) == {"L1/L2": 1}
    line = dsmod.holdout_level_warning(units)
    assert "fewer than 2 holdout patients for T11/T12 (0), L1/L2 (1), L2/L3 (0)" in line
    assert dsmod.holdout_level_warning(units, classes=["L4/L5"]) is None
    built = units.assign(split=np.where(units["patient_id"] == "h0", "holdout", units["split"]))  # a larger holdout
    assert dsmod.holdout_levels_unread(units, holdout=built)["L1/L2"] == 1  # the holdout read is `holdout`'s
    assert dsmod.holdout_levels_unread(units, holdout=built)["L2/L3"] == 0 and "L4/L5" not in unread


def test_level_rows_count_patients_per_part_and_source():
    units = pd.concat([
        _units_of({"L1/L2": [("m0", "b"), ("c0", "a")], "T12/L1": [("c0", "a")]}),
        _units_of({"L1/L2": [("m1", "b")]}, split="holdout"),
        _units_of({"L1/L2": [("m2", "b")]}, split="reference"),
    ], ignore_index=True)
    rows = dsmod.level_rows(units)
    assert rows[0].split()[:3] == ["T12/L1", "1", "VUs"] and rows[1].split()[:3] == ["L1/L2", "4", "VUs"]
    assert "train 1 / holdout 0 / reference 0  (patients by source: a 1)" in rows[0]
    assert "train 2 / holdout 1 / reference 1  (patients by source: a 1, b 3)" in rows[1]
    one_source = dsmod.level_rows(units.assign(site="b"))
    assert "(" not in one_source[1]  # one source: no per-source counts


def test_generator_design_reads_the_dataset_a_card_names_under_its_split(tmp_path):
    """The Models & data page's table: the dataset folder the card names, with the card's fingerprint, read level by
    level; training patients under the generator's own split, holdout and reference as built (what `evaluate` reads);
    the warnings `train` printed; nothing where the folder is elsewhere or holds another dataset."""
    from fixtures.dashboard_models import fabricate_own_dataset

    from synthvu_core.data.build import generator_design

    ds = fabricate_own_dataset(tmp_path / "vus")
    split = {k: v for k, v in ds.card["split"].items() if k != "patients"}
    card = {"scheme": "level", "classes": ["T12/L1", "L1/L2", "L2/L3"],
            "dataset": {"fingerprint": ds.fingerprint, "path": str(tmp_path / "vus"), "split": split}}
    design = generator_design(card)
    assert [d.level for d in design.levels] == ["T12/L1", "L1/L2", "L2/L3"]
    assert design.levels[0].patients == {"train": 2, "holdout": 0, "reference": 1}
    assert design.levels[0].by_source == {"a": 3} and design.levels[1].by_source == {"a": 3, "b": 7}
    assert design.levels[1].vus == 10 and design.patients == {"train": 6, "holdout": 2, "reference": 2}
    assert len(design.warnings) == 2
    assert "training patients for T12/L1 (2, all a)" in design.warnings[0]
    assert "holdout patients for T12/L1 (0)" in design.warnings[1]
    assert generator_design({**card, "scheme": "region"}).warnings == []  # level warnings for the level scheme
    fewer = dsmod.SplitConfig(0.4, 0.4, 0.2, seed=0)  # `train --split`: another split of the same VUs
    resplit = generator_design({**card, "dataset": {**card["dataset"], "split": dataclasses.asdict(fewer)}})
    trained = ds.with_split(fewer).units
    want = trained.loc[(trained["split"] == "train") & (trained["level"] == "L1/L2"), "patient_id"].nunique()
    assert want != 6 and resplit.levels[1].patients == {"train": want, "holdout": 2, "reference": 2}
    assert resplit.patients["train"] == trained.loc[trained["split"] == "train", "patient_id"].nunique()
    held = set(ds.units.loc[ds.units["split"] == "holdout", "patient_id"])
    assert resplit.nested == held.isdisjoint(trained.loc[trained["split"] == "train", "patient_id"])
    other = {**card, "dataset": {**card["dataset"], "fingerprint": "0" * 16}}
    moved = {**card, "dataset": {**card["dataset"], "path": str(tmp_path / "elsewhere")}}
    assert generator_design(other) is None and generator_design(moved) is None
    assert generator_design(card, public=True) is None  # a shared dashboard opens no folder a card names


def test_generator_design_reads_the_parts_evaluate_reads_and_survives_a_broken_table(tmp_path):
    """Holdout patients as `evaluate` reads them (a card split before strata existed re-draws the dataset's split
    unstratified), a training split that does not nest flagged as `evaluate` refuses it, and a dataset table that
    cannot be read gives no design rather than an error in the page."""
    from fixtures.dashboard_models import fabricate_own_dataset

    from synthvu_core.data.build import generator_design
    from synthvu_core.evaluation.report import evaluation_datasets

    ds = fabricate_own_dataset(tmp_path / "vus")
    base = {"scheme": "level", "classes": ["T12/L1", "L1/L2", "L2/L3"],
            "dataset": {"fingerprint": ds.fingerprint, "path": str(tmp_path / "vus")}}
    seen = set()
    for seed in range(6):  # old cards (no `stratify`) and re-splits that nest or not
        split = {"train": 0.5, "holdout": 0.3, "reference": 0.2, "seed": seed}
        card = {**base, "dataset": {**base["dataset"], "split": split}}
        design = generator_design(card)
        try:
            members, read = evaluation_datasets(Path("gen"), card, ds)
        except ReportError:
            assert design is not None and not design.nested
            seen.add("refused")
            continue
        assert design.nested
        seen.add("read")
        held = read.units[read.units["split"] == "holdout"]
        assert design.patients["holdout"] == held["patient_id"].nunique()
        assert {d.level: d.patients["holdout"] for d in design.levels} == held.groupby("level")["patient_id"].nunique(
        ).reindex([d.level for d in design.levels], fill_value=0).to_dict()
        trained = members.units[members.units["split"] == "train"]
        assert design.patients["train"] == trained["patient_id"].nunique() and design.train_vus == len(trained)
    assert seen == {"refused", "read"}
    (tmp_path / "vus" / "units.csv").write_text("patient_id,level\nsub-00,\n")  # a table cut short
    assert generator_design({**base, "dataset": {**base["dataset"], "split": split}}) is None


@pytest.mark.parametrize("text", ["nan,0.2,0.2", "0.6,0.2,inf", "0.6,-0.2,0.6", "0,0,0"])
def test_split_ratios_that_are_not_finite_non_negative_numbers_are_one_line(text):
    """``--split`` of ``train`` and ``data build``: nan, inf, a negative or all-zero ratio is named, never a
    traceback nor a dataset split by an infinite share."""
    from synthvu_core.data.dataset import SplitConfig
    from synthvu_core.errors import DataError

    with pytest.raises(DataError, match="must be finite, non-negative and not all zero"):
        SplitConfig.parse(text)
