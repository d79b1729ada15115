"""Streamed sampling and export: same VUs as in memory, bounded by the batch, checked before any work."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

from synthvu_core.cli import main
from synthvu_core.data.dataset import to_uint8
from synthvu_core.errors import SelectionError, SynthVUError
from synthvu_core.models import registry
from synthvu_core.models.sampling import (
    export,
    open_images,
    plan_export,
    sample,
    sample_batches,
    sample_to_file,
    sample_uint8,
    to_uint8_torch,
    write_npz_stream,
)
from tests.test_sampling import trained

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("m") / "region"
    trained(folder, "region")
    return folder


@pytest.fixture(scope="module")
def gen(gen_dir):
    return registry.load_generator(gen_dir)


def test_torch_uint8_matches_numpy_including_ties():
    k = np.arange(256, dtype=np.float32)
    x = np.concatenate([k / 127.5 - 1, (k + 0.5) / 127.5 - 1, [-3.0, 3.0, -1.0, 1.0]]).astype(np.float32)
    np.testing.assert_array_equal(to_uint8_torch(torch.from_numpy(x.copy())).numpy(), to_uint8(x))
    u8 = np.array([0, 7, 255], dtype=np.uint8)
    assert to_uint8(u8) is u8  # already uint8: passed through, not re-scaled


def test_batches_are_the_same_vus_whatever_batch_size(gen):
    ref = sample(gen, 37, seed=5)
    for b in (1, 5, 16, 17, 256):
        got = list(sample_batches(gen, 37, seed=5, batch_size=b))
        assert [s for s, _, _ in got] == list(range(0, 37, b))
        images = np.concatenate([x for _, x, _ in got])
        assert images.dtype == np.uint8 and len(got[0][1]) == min(b, 37)
        np.testing.assert_array_equal(np.concatenate([y for _, _, y in got]), ref.labels)
        assert np.abs(images.astype(int) - to_uint8(ref.images).astype(int)).max() <= 1  # float32 rounding at .5
    u = sample_uint8(gen, 37, seed=5, batch_size=4)
    assert u.images.dtype == np.uint8 and u.positions == ref.positions


@pytest.mark.parametrize("compress", [False, True])
def test_streamed_npz_round_trips(gen, tmp_path, compress):
    ref = sample_uint8(gen, 21, seed=2, batch_size=4)
    out = tmp_path / "vus.npz"
    plan = sample_to_file(gen, 21, out, seed=2, batch_size=4, compress=compress)
    assert plan.path == out and plan.n == 21
    with np.load(out, allow_pickle=False) as d:
        assert sorted(d.files) == ["classes", "images", "labels", "positions"]
        np.testing.assert_array_equal(d["images"], ref.images)
        np.testing.assert_array_equal(d["labels"], ref.labels)
        assert list(d["classes"]) == ref.classes and list(d["positions"]) == ref.positions
    kinds = {i.compress_type for i in zipfile.ZipFile(out).infolist()}
    assert kinds == {zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED}
    # export() of in-memory samples writes the same arrays
    with np.load(export(ref, tmp_path / "mem.npz"), allow_pickle=False) as d:
        np.testing.assert_array_equal(d["images"], ref.images)


def test_open_images_memory_maps_the_stored_member(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 2, 3, 4), dtype=np.uint8)
    batches = [(0, images[:3], np.zeros(3, np.int64)), (3, images[3:], np.ones(2, np.int64))]
    write_npz_stream(tmp_path / "a.npz", iter(batches), 5, (2, 3, 4), ["L", "T"])
    got = open_images(tmp_path / "a.npz")
    assert isinstance(got, np.memmap) and got.shape == images.shape
    np.testing.assert_array_equal(got, images)
    write_npz_stream(tmp_path / "c.npz", iter(batches), 5, (2, 3, 4), ["L", "T"], compress=True)
    with pytest.raises(SelectionError, match="compressed"):
        open_images(tmp_path / "c.npz")


def test_stream_writer_refuses_a_short_or_wrong_stream(tmp_path):
    good = [(0, np.zeros((2, 1, 2, 2), np.uint8), np.zeros(2, np.int64))]
    with pytest.raises(ValueError, match="announced"):
        write_npz_stream(tmp_path / "a.npz", iter(good), 3, (1, 2, 2), ["L"])
    with pytest.raises(ValueError, match="uint8"):
        write_npz_stream(
            tmp_path / "b.npz", iter([(0, np.zeros((2, 1, 2, 2), np.float32), np.zeros(2))]), 2, (1, 2, 2), ["L"]
        )
    assert not list(tmp_path.iterdir())  # nothing half-written is left


def test_other_formats_go_through_uint8(gen, tmp_path):
    import nibabel as nib

    ref = sample_uint8(gen, 6, seed=1)
    sample_to_file(gen, 6, tmp_path / "v.nii.gz", seed=1)
    vol = np.asarray(nib.load(tmp_path / "v.nii.gz").dataobj)
    np.testing.assert_array_equal(np.moveaxis(vol, -1, 0), ref.images)
    sample_to_file(gen, 6, tmp_path / "v.png", seed=1)
    assert (tmp_path / "v.png").stat().st_size > 0


@pytest.mark.parametrize("batch", ["0", "-4"])
def test_cli_refuses_bad_batch_size_before_work(gen, gen_dir, tmp_path, capsys, monkeypatch, batch):
    monkeypatch.setattr(registry, "load_generator", lambda *a, **k: pytest.fail("the generator was loaded"))
    assert main(["sample", str(gen_dir), "--n", "5", "--batch-size", batch, "--out", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "batch size" in err[0]
    assert not (tmp_path / "x.npz").exists()
    with pytest.raises(SelectionError, match="batch size"):
        next(sample_batches(gen, 3, batch_size=int(batch)))
    with pytest.raises(SelectionError, match="batch size"):
        sample(gen, 3, batch_size=int(batch))


def test_cli_refuses_what_cannot_fit_before_work(gen_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(registry, "load_generator", lambda *a, **k: pytest.fail("the generator was loaded"))
    assert main(["sample", str(gen_dir), "--n", "10000000000", "--out", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x.npz" in err[0] and ("free" in err[0] or "limit" in err[0])
    # a format that holds every VU in memory is refused at a size the streamed .npz accepts
    card = registry.load_card(gen_dir)
    shape, classes = tuple(card["shape"]), list(card["classes"])
    plan = plan_export(tmp_path / "y.npz", 2_000_000, shape, classes)
    assert plan.memory_bytes < 2**30 < plan.disk_bytes
    import synthvu_core.models.sampling as sampling

    monkeypatch.setattr(sampling, "available_memory", lambda: 2**30)
    assert plan_export(tmp_path / "z.npz", 20_000, (9, 64, 64), classes).memory_bytes < 0.8 * 2**30
    with pytest.raises(SelectionError, match=r"memory, 0.8 GiB is the limit.*use it"):
        plan_export(tmp_path / "z.nii.gz", 20_000, (9, 64, 64), classes)
    with pytest.raises(SelectionError, match="smaller --batch-size"):
        plan_export(tmp_path / "z.npz", 20_000, (9, 64, 64), classes, batch_size=4096)


def test_cli_checks_suffix_and_folder_before_work(gen_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(registry, "load_generator", lambda *a, **k: pytest.fail("the generator was loaded"))
    assert main(["sample", str(gen_dir), "--n", "5", "--out", str(tmp_path / "x.tif")]) == 2
    assert "unknown export format" in capsys.readouterr().err
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    assert main(["sample", str(gen_dir), "--n", "5", "--out", str(blocker / "x.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x.npz" in err[0] and "cannot write" in err[0]
    (tmp_path / "d.npz").mkdir()
    assert main(["sample", str(gen_dir), "--n", "5", "--out", str(tmp_path / "d.npz")]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_write_errors_become_one_line(gen, tmp_path, monkeypatch):
    import synthvu_core.models.sampling as sampling

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sampling, "write_npz_stream", broken)
    with pytest.raises(SynthVUError, match="(?i)no space left"):
        sample_to_file(gen, 3, tmp_path / "x.npz")


def test_all_finite_sees_every_nan_and_infinity_and_survives_an_overflowing_sum():
    from synthvu_core.models.sampling import all_finite

    x = torch.zeros(20, 9, 4, 4).contiguous(memory_format=torch.channels_last)
    assert all_finite(x)
    for bad in (float("nan"), float("inf"), -float("inf")):
        y = x.clone()
        y[13, 4, 2, 1] = bad
        assert not all_finite(y), bad
    y = x.clone()
    y[0, 0, 0, 0], y[1, 0, 0, 0] = float("inf"), -float("inf")  # the sum is NaN, not an infinity
    assert not all_finite(y)
    assert all_finite(torch.full((4, 3), 3e38))  # the sum overflows; every value is finite


def test_torch_uint8_of_a_batch_matches_numpy_slice_by_slice():
    k = np.arange(256, dtype=np.float32)
    ties = np.concatenate([k / 127.5 - 1, (k + 0.5) / 127.5 - 1, [-3.0, 3.0, -1.0, 1.0]]).astype(np.float32)
    rng = np.random.default_rng(0)
    x = rng.choice(ties, size=(21, 9, 5, 3)).astype(np.float32)  # 21 rows: several slices and a short last one
    t = torch.from_numpy(x.copy()).contiguous(memory_format=torch.channels_last)
    got = to_uint8_torch(t)
    assert got.is_contiguous() and got.dtype == torch.uint8
    np.testing.assert_array_equal(got.numpy(), to_uint8(x))
