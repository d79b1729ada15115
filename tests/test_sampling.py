"""Sampling: determinism, batch-size independence, positions, interpolation, export round trips."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from montage_checks import assert_rows_labelled
from PIL import Image
from vu_rows import vu_row

from synthvu_core.data.dataset import SplitConfig, VUDataset, to_uint8
from synthvu_core.errors import SelectionError
from synthvu_core.models.registry import load_generator
from synthvu_core.models.sampling import export, interpolate, sample, sample_rows
from synthvu_core.models.training import ArchOverrides, TrainConfig, train

torch.set_num_threads(1)
VUS = ("T11/T12", "T12/L1", "L1/L2", "L4/L5")


def tiny_dataset(shape) -> VUDataset:
    rng = np.random.default_rng(0)
    rows = [vu_row(f"p{p}", v, spacing_mm=0.8, slice_mm=2.5) for p in range(4) for v in VUS]
    imgs = rng.integers(0, 256, (len(rows), *shape), dtype=np.uint8)
    return VUDataset.from_units(imgs, pd.DataFrame(rows), split=SplitConfig(0.5, 0.25, 0.25, seed=0))


def trained(folder, scheme, shape=(3, 32, 32)):
    cfg = TrainConfig(
        overrides=ArchOverrides(width=4, d_width=4),
        batch_size=4,
        steps=1,
        checkpoint_every=0,
        montage_every=0,
        device="cpu",
        scheme=scheme,
    )
    return load_generator(train(tiny_dataset(shape), folder, cfg, progress=False))


@pytest.fixture(scope="module")
def region_gen(tmp_path_factory):
    return trained(tmp_path_factory.mktemp("m") / "region", "region")


@pytest.fixture(scope="module")
def level_gen(tmp_path_factory):
    return trained(tmp_path_factory.mktemp("m") / "level", "level", shape=(1, 16, 16))


def test_same_seed_same_vus_whatever_batch_size(region_gen):
    a = sample(region_gen, 7, seed=3, batch_size=256)
    b = sample(region_gen, 7, seed=3, batch_size=2)
    c = sample(region_gen, 7, seed=4)
    assert a.images.shape == (7, 3, 32, 32) and a.images.dtype == np.float32
    assert np.abs(a.images).max() <= 1.0
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.images, b.images, atol=1e-6)
    assert not np.allclose(a.images, c.images)


def test_sample_rows_are_the_rows_of_the_full_sample(region_gen):
    full = sample(region_gen, 40, seed=3).images
    rows = np.array([0, 17, 39, 5])
    np.testing.assert_allclose(sample_rows(region_gen, 40, rows, seed=3), full[rows], atol=1e-5)
    assert not np.allclose(sample_rows(region_gen, 40, rows, seed=4), full[rows], atol=1e-3)
    with pytest.raises(SelectionError, match="0..39"):
        sample_rows(region_gen, 40, [40], seed=3)


def test_prior_and_positions(region_gen, level_gen):
    assert region_gen.card["classes"] == ["T", "L"]
    prior = sample(region_gen, 400, seed=0)
    assert set(prior.positions) == {"T", "L"}
    assert abs(np.mean(prior.labels == 1) - region_gen.card["class_prior"][1]) < 0.1
    with pytest.raises(SelectionError, match="'L4/L5' is a level, but this generator makes regions"):
        sample(region_gen, 20, position="L4/L5")  # never region L returned silently for a level
    assert set(sample(region_gen, 20, position="L").positions) == {"L"}
    assert set(sample(level_gen, 20, position="L4/L5").positions) == {"L4/L5"}
    assert set(sample(level_gen, 50, position="L").positions) <= {"L1/L2", "L4/L5"}  # region -> its levels
    with pytest.raises(SelectionError, match="C3/C4"):
        sample(level_gen, 5, position="C3/C4")
    with pytest.raises(SelectionError):
        sample(region_gen, 0)


def test_interpolate_moves_between_classes(level_gen):
    s = interpolate(level_gen, "T11/T12", "L4/L5", steps=5, seed=1)
    assert s.images.shape == (5, 1, 16, 16)
    assert s.positions[0] == "T11/T12" and s.positions[-1] == "L4/L5"
    assert not np.allclose(s.images[0], s.images[-1])
    z = torch.randn(2, 100, generator=torch.Generator().manual_seed(1))  # the interpolation's end points
    with torch.no_grad():
        ends = level_gen(z, torch.tensor([0, 3])).numpy()
    np.testing.assert_allclose(s.images[[0, -1]], ends, atol=1e-6)


def test_export_round_trips(region_gen, tmp_path):
    s = sample(region_gen, 4, position="L", seed=2)
    npz = np.load(export(s, tmp_path / "vus.npz", region_gen.card), allow_pickle=False)
    np.testing.assert_array_equal(npz["images"], to_uint8(s.images))
    np.testing.assert_array_equal(npz["labels"], s.labels)
    assert list(npz["classes"]) == s.classes and list(npz["positions"]) == ["L"] * 4

    nii = nib.load(export(s, tmp_path / "vus.nii.gz", region_gen.card))
    assert nii.shape == (3, 32, 32, 4)
    assert nii.header.get_zooms()[:3] == pytest.approx((2.5, 0.8, 0.8))
    np.testing.assert_array_equal(np.asarray(nii.dataobj)[..., 1], to_uint8(s.images[1]))
    assert (tmp_path / "vus.csv").read_text().splitlines()[1] == "0,L,1"

    png = np.asarray(Image.open(export(s, tmp_path / "vus.png", region_gen.card)))
    assert png.shape[0] == 4 * 33 - 1  # one row per VU, 1-pixel gaps
    assert_rows_labelled(png, ["L"] * 4, 32, 32, cols=3)  # 3 slices per row, each row labelled with its position

    with pytest.raises(SelectionError, match="unknown export format"):
        export(s, tmp_path / "vus.tif", region_gen.card)
