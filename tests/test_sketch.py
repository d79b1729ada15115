"""A rebuild of a dataset on another machine (one grey level in a few voxels) is told from another dataset."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthvu_core.data import build as buildmod
from synthvu_core.data.dataset import SplitConfig, VUDataset
from synthvu_core.data.sketch import REBUILD_TOLERANCE, content_sketch, is_rebuild, same_dataset, sketch_distance
from synthvu_core.errors import CheckpointError, DataError


def _dataset(n=200, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(30, 220, size=(n, 9, 16, 16), dtype=np.uint8)
    units = pd.DataFrame({"patient_id": [f"p{i // 4:03d}" for i in range(n)], "level": ["L1/L2", "L2/L3"] * (n // 2),
                          "region": "L", "source": "a"})
    from synthvu_core.data.dataset import UNIT_COLUMNS

    for c in UNIT_COLUMNS:
        if c not in units.columns and c != "split":
            units[c] = 1.0
    return VUDataset.from_units(images, units, split=SplitConfig(seed=0))


def _rounded(images, n_voxels, seed=1):
    """``images`` with ``n_voxels`` voxels moved by one grey level (as another CPU's float kernels round)."""
    out = images.copy().ravel()
    idx = np.random.default_rng(seed).choice(out.size, n_voxels, replace=False)
    out[idx] = out[idx] + np.where(np.arange(n_voxels) % 2, 1, -1).astype(np.uint8)
    return out.reshape(images.shape)


def test_a_rounded_rebuild_matches_and_other_content_does_not():
    ds = _dataset()
    sketch = content_sketch(ds.images, ds.units)
    assert json.loads(json.dumps(sketch)) == sketch and len(sketch["vu_groups"]) == 200  # one VU per group
    rebuilt = _rounded(ds.images, 20)  # 20 of 460,800 voxels, as measured across CPUs (a few per million)
    old = {**sketch, "vu_groups": content_sketch(ds.images, ds.units, groups=64)["vu_groups"]}
    assert is_rebuild(rebuilt, ds.units, old)  # a sketch of 64 groups (written before) is compared as it was taken
    assert 0 < sketch_distance(sketch, content_sketch(rebuilt, ds.units)) <= REBUILD_TOLERANCE
    assert is_rebuild(rebuilt, ds.units, sketch)
    one_vu = ds.images.copy()
    one_vu[7] = one_vu[8]  # one VU of 200 replaced by another
    assert sketch_distance(sketch, content_sketch(one_vu, ds.units)) > REBUILD_TOLERANCE
    brighter = ds.images.copy()
    brighter[:, :, :8] += 1  # half of every VU one grey level brighter
    assert not is_rebuild(brighter, ds.units, sketch)
    relabelled = ds.units.copy()
    relabelled.loc[0, "level"] = "L2/L3"
    assert sketch_distance(sketch, content_sketch(ds.images, relabelled)) is None  # another VU table
    assert sketch_distance(sketch, content_sketch(ds.images[:100], ds.units[:100])) is None
    assert not is_rebuild(rebuilt, ds.units, None) and sketch_distance(sketch, {"shape": 1}) is None
    assert same_dataset(ds, ds.fingerprint) and same_dataset(ds, None) and not same_dataset(ds, "0" * 16)
    assert same_dataset(ds, "0" * 16, sketch)  # other bytes, same content: the sketch decides


def test_evaluation_accepts_a_rebuild_only_with_a_matching_sketch():
    from synthvu_core.evaluation.report import evaluation_datasets

    ds = _dataset()
    rebuilt = VUDataset.from_units(_rounded(ds.images, 20), ds.units.drop(columns="split"), split=SplitConfig(seed=0))
    assert rebuilt.fingerprint != ds.fingerprint
    card = {"dataset": {"fingerprint": ds.fingerprint, "split": ds.card["split"]}}
    with pytest.raises(CheckpointError, match="trained on dataset"):
        evaluation_datasets(Path("gen"), card, rebuilt)
    card["dataset"]["sketch"] = content_sketch(ds.images, ds.units)
    members, utility = evaluation_datasets(Path("gen"), card, rebuilt)
    assert members is rebuilt and utility is rebuilt
    card["dataset"]["sketch"] = content_sketch(_dataset(seed=5).images, ds.units)  # another dataset's sketch
    with pytest.raises(CheckpointError, match="trained on dataset"):
        evaluation_datasets(Path("gen"), card, rebuilt)


def test_a_phantom_rebuilt_elsewhere_is_used_with_a_notice(tmp_path, monkeypatch, capsys):
    pytest.importorskip("synthvu_core.data.phantom")
    monkeypatch.setenv("SYNTHVU_CACHE", str(tmp_path / "cache"))
    recipe = buildmod.PhantomRecipe("tiny-sketch", n_patients=2, seed=0, split=SplitConfig(1, 1, 0))
    ds = buildmod.demo_dataset(recipe=recipe)
    sketch = content_sketch(ds.images, ds.units)  # the card of a generator trained on it carries this
    elsewhere = "0" * 16  # the fingerprint the same recipe had on another machine
    card = {"dataset": {"fingerprint": elsewhere, "recipe": recipe.as_dict(), "sketch": sketch}}
    found = buildmod.dataset_of_card(card, "gen")
    assert found.fingerprint == ds.fingerprint and "is a rebuild of the generator's dataset" in capsys.readouterr().err
    with pytest.raises(DataError, match="differs beyond rounding"):
        buildmod.demo_dataset(elsewhere, recipe=recipe, expected_sketch={**sketch, "regions": [0] * 36})
    with pytest.raises(DataError, match="another build of the phantom"):
        buildmod.demo_dataset(elsewhere, recipe=recipe)  # no sketch: bytes alone decide, as before


def test_generator_cards_carry_the_sketch_of_public_data_only():
    ds = _dataset()
    assert buildmod.card_dataset_origin(ds) == {"sources": ds.card["sources"]}  # own data: no sums of its images
    ds.card["recipe"] = {"name": "x"}
    origin = buildmod.card_dataset_origin(ds)
    assert origin["recipe"] == {"name": "x"} and origin["sketch"].pop("fingerprint") == ds.fingerprint
    assert origin["sketch"] == content_sketch(ds.images, ds.units)


def test_shipped_phantom_cards_carry_the_sketch_of_their_cohort():
    """Every shipped card of the demo cohort carries one sketch, taken from the demo's own bytes; own data none."""
    models = Path(__file__).resolve().parents[1] / "models"
    cards = {p.parent.name: json.loads(p.read_text()) for p in models.glob("*/card.json")}
    demo = [c for c in cards.values() if (c["dataset"].get("recipe") or {}).get("name") == "phantom-demo-120-s0"]
    assert len(demo) >= 5 and all(c["dataset"]["sketch"] == demo[0]["dataset"]["sketch"] for c in demo)
    assert demo[0]["dataset"]["sketch"]["shape"][1:] == [9, 64, 64]
    assert demo[0]["dataset"]["sketch"]["fingerprint"] == demo[0]["dataset"]["fingerprint"]  # the very bytes
    for name, c in cards.items():  # an own-data card never carries one
        assert ("sketch" in c["dataset"]) <= bool(c["dataset"].get("recipe")), name


def test_the_dashboard_reads_a_report_on_a_rebuild_as_the_generators():
    from dashboard.summary import ReportView, dataset_mismatch

    card = {"dataset": {"fingerprint": "a" * 16}}
    rebuild = ReportView(scalars={}, arrays={}, meta={"dataset_fingerprint": "b" * 16,
                                                      "generator_dataset_fingerprint": "a" * 16})
    assert dataset_mismatch(rebuild, card) is None  # evaluate recognised the rebuild by its sketch
    other = ReportView(scalars={}, arrays={}, meta={"dataset_fingerprint": "b" * 16})
    assert "do not describe this generator" in dataset_mismatch(other, card)


def test_a_report_computed_on_a_rebuild_reads_as_the_generators(tmp_path):
    """What `evaluate` writes on a rebuild (its fingerprint, the generator's beside it) loads for the generator's
    fingerprint: in the dashboard, the model card and slides alike; a report of another dataset does not."""
    from synthvu_core.errors import ReportError
    from synthvu_core.evaluation.report import Report, load_report, save_report

    def saved(meta):
        rep = Report({"utility.tstr.balanced_accuracy": 0.5}, {}, {"report_version": 0, **meta}, _arrays={})
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        save_report(rep, folder / "report")
        return folder

    rebuild = saved({"dataset_fingerprint": "b" * 16, "generator_dataset_fingerprint": "a" * 16})
    assert load_report(rebuild, expected_fingerprint="a" * 16, check_weights=False) is not None
    other = saved({"dataset_fingerprint": "b" * 16})
    with pytest.raises(ReportError, match="not on the expected dataset"):
        load_report(other, expected_fingerprint="a" * 16, check_weights=False)


def test_a_sub_volume_report_on_a_rebuild_belongs_to_its_generator():
    from synthvu_core.evaluation.volume import report_of

    card = {"name": "g", "dataset": {"fingerprint": "a" * 16}}
    assert report_of({"model": "g", "dataset": "a" * 16}, card)
    assert report_of({"model": "g", "dataset": "b" * 16, "generator_dataset": "a" * 16}, card)  # a rebuild
    assert not report_of({"model": "g", "dataset": "b" * 16}, card)  # another dataset
    assert not report_of({"model": "h", "dataset": "a" * 16}, card) and not report_of(None, card)


def test_noise_on_every_voxel_of_a_large_dataset_is_no_rebuild(monkeypatch):
    """Zero-mean noise cancels in sums over many VUs: with 64 groups it would pass as a rebuild of 5,000 VUs."""
    from synthvu_core.data import sketch as sketch_module

    ds = _dataset(n=5000)
    noise = np.rint(np.random.default_rng(3).normal(0, 0.3, ds.images.shape))  # ±1 in about 10 % of voxels
    noisy = (ds.images.astype(np.int16) + noise).astype(np.uint8)
    assert not is_rebuild(noisy, ds.units, content_sketch(ds.images, ds.units))  # 1,024 groups
    monkeypatch.setattr(sketch_module, "MAX_VU_GROUPS", 64)
    assert is_rebuild(noisy, ds.units, sketch_module.content_sketch(ds.images, ds.units))  # what 64 groups let by


def test_controls_of_a_report_on_a_rebuild_read_too(tmp_path):
    from synthvu_core.evaluation.report import Report, load_report, save_report

    meta = {"report_version": 0, "dataset_fingerprint": "b" * 16, "generator_dataset_fingerprint": "a" * 16}
    rep = Report({"utility.tstr.balanced_accuracy": 0.5}, {}, dict(meta), _arrays={})
    rep.controls["graded_5pct"] = Report({"utility.tstr.balanced_accuracy": 0.4}, {},
                                         {"report_version": 0, "dataset_fingerprint": "b" * 16}, _arrays={})
    save_report(rep, tmp_path / "gen" / "report")
    loaded = load_report(tmp_path / "gen", expected_fingerprint="a" * 16, check_weights=False)
    assert loaded is not None and "graded_5pct" in loaded.controls


def test_cached_counts_of_a_rebuild_are_read_by_its_vu_table(tmp_path, monkeypatch):
    """The dashboard's dataset counts (JSON and the VU table only) for a cache built with other bytes: shown where the
    VU table is the card's sketch's, not for another dataset under the recipe's name."""
    monkeypatch.setenv("SYNTHVU_CACHE", str(tmp_path))
    ds = _dataset()
    ds.card["counts"], ds.card["recipe"] = ds.counts(), {"name": "demo", "seed": 0}
    ds.save(tmp_path / "datasets" / "demo")
    card = {"dataset": {"recipe": {"name": "demo", "seed": 0}, "fingerprint": "0" * 16,
                        "sketch": content_sketch(ds.images, ds.units)}}
    assert buildmod.cached_dataset_counts(card) == json.loads(json.dumps(ds.counts()))
    other_seed = {"dataset": {**card["dataset"], "recipe": {"name": "demo", "seed": 1}}}
    assert buildmod.cached_dataset_counts(other_seed) is None  # another recipe under the same name
    assert buildmod.cached_dataset_counts({**card, "dataset": {**card["dataset"], "sketch": None}}) is None
    other = content_sketch(ds.images, ds.units.assign(level="L2/L3"))
    assert buildmod.cached_dataset_counts({"dataset": {**card["dataset"], "sketch": other}}) is None
    assert buildmod.cached_dataset_counts({"dataset": {**card["dataset"], "fingerprint": ds.fingerprint,
                                                       "sketch": None}}) == json.loads(json.dumps(ds.counts()))
