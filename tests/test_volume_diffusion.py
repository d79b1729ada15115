"""3-D latent diffusion on sub-volumes: shapes, slab decoding, train -> card -> load -> sample -> NIfTI export."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from synthetic_volumes import spine_arrays, write_pair
from vu_rows import vu_row

from synthvu_core.data.dataset import SplitConfig, VUDataset
from synthvu_core.data.nifti import load_pair
from synthvu_core.data.units import ExtractConfig, extract_units
from synthvu_core.models import diffusion
from synthvu_core.models.diffusion_training import DiffusionTrainConfig, three_d_defaults, train_diffusion
from synthvu_core.models.registry import load_card, load_generator
from synthvu_core.models.sampling import Samples, sample, write_nifti

torch.set_num_threads(1)
TINY_3D = dict(ae_channels=(4, 8), latent_channels=2, ae_norm_groups=4, unet_channels=(8, 8), unet_norm_groups=4)
SHAPE = (8, 16, 16)
REGION_LEVEL = {"C": 40, "T": 128, "L": 215}


def tiny_config(**kw) -> diffusion.DiffusionConfig:
    return diffusion.DiffusionConfig(**{"name": "diffusion3d", "shape": SHAPE, "n_classes": 3, "spatial_dims": 3,
                                        **TINY_3D, **kw})


def test_config_shapes_and_cards():
    c = tiny_config()
    assert c.latent_shape == (2, 4, 8, 8) and c.latent_dim == 512 and c.image_channels == 1
    assert c.to_dict()["spatial_dims"] == 3
    assert "spatial_dims" not in diffusion.DiffusionConfig().to_dict()  # VU cards and checkpoints unchanged
    assert diffusion.DiffusionConfig.from_dict(c.to_dict()).latent_shape == c.latent_shape
    with pytest.raises(ValueError, match="divisible"):
        tiny_config(shape=(7, 16, 16))
    d = diffusion.DiffusionConfig(name="diffusion3d", shape=(16, 64, 64), **three_d_defaults("diffusion3d"))
    assert d.latent_shape == (4, 4, 16, 16)


def test_generator_gives_sub_volumes_in_the_vu_layout():
    torch.manual_seed(0)
    gen = diffusion.DiffusionGenerator(tiny_config(sampling_steps=2)).eval()
    z = torch.randn(3, gen.config.latent_dim)
    with torch.no_grad():
        a, b = gen(z, torch.tensor([0, 1, 2])), gen(z, torch.tensor([0, 1, 2]))
    assert a.shape == (3, *SHAPE) and a.abs().max() <= 1 and torch.equal(a, b)


class _LocalDecoder(torch.nn.Module):
    """Up-sampling and one 3x3x3 convolution: each output row sees one latent row on either side."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Upsample(scale_factor=2), torch.nn.Conv3d(2, 1, 3, padding=1))

    def forward(self, z):
        return self.net(z)


def test_slab_decoding_joins_without_seams():
    dec = _LocalDecoder()
    z = torch.randn(2, 2, 3, 10, 6)
    with torch.no_grad():
        whole = diffusion.decode_slabs(dec, z, None)
        for slab in (1, 3, 4, 10):
            slabs = diffusion.decode_slabs(dec, z, slab, halo=1)
            assert slabs.shape == whole.shape
            assert torch.allclose(slabs, whole, atol=1e-6), slab
        no_halo = diffusion.decode_slabs(dec, z, 3, halo=0)
    assert not torch.allclose(no_halo, whole, atol=1e-4)  # the halo is what makes slabs exact


def planted_volumes(patients: int = 6) -> VUDataset:
    """Sub-volumes whose brightness says their region (a class signal a generator can learn)."""
    rng = np.random.default_rng(0)
    rows, imgs = [], []
    for p in range(patients):
        for level in ("C3/C4", "T5/T6", "L3/L4"):
            rows.append(vu_row(f"p{p}", level, spacing_mm=2.0))
            imgs.append(np.clip(REGION_LEVEL[level[0]] + rng.normal(0, 6, SHAPE), 0, 255).astype(np.uint8))
    return VUDataset.from_units(np.stack(imgs), pd.DataFrame(rows), split=SplitConfig(0.5, 0.25, 0.25, seed=0))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    original = diffusion.DiffusionConfig.__init__
    mp.setattr(diffusion.DiffusionConfig, "__init__", lambda self, *a, **k: original(self, *a, **{**k, **TINY_3D}))
    try:
        out = tmp_path_factory.mktemp("volumes") / "g3d"
        cfg = DiffusionTrainConfig(arch="diffusion3d", batch_size=4, autoencoder_steps=3, steps=3, checkpoint_every=0,
                                   montage_every=0, weights_dtype="float32", device="cpu", sampling_steps=2)
        train_diffusion(planted_volumes(), out, cfg, progress=False)
    finally:
        mp.undo()
    return out


def test_train_card_load_and_sample(trained):
    card = load_card(trained)
    assert card["architecture"]["name"] == "diffusion3d" and card["architecture"]["spatial_dims"] == 3
    assert card["shape"] == list(SHAPE) and card["latent_dim"] == 2 * 4 * 8 * 8
    gen = load_generator(trained)
    s = sample(gen, 4, position="L", seed=1)
    assert s.images.shape == (4, *SHAPE) and set(s.positions) == {"L"}
    assert np.array_equal(s.images, sample(gen, 4, position="L", seed=1).images)


def test_nifti_export_of_a_sub_volume_opens_in_the_right_orientation(tmp_path):
    """A known asymmetric volume: a block on the patient's right, a strip in front, bodies brighter upwards.
    Cut as a sub-volume, exported, re-read in RAS+: each marker lies on its side of the world."""
    img, lab, _ = spine_arrays((20, 21, 22))
    cx, cy = img.shape[0] // 2, img.shape[1] // 2
    img[cx + 6 : cx + 12, cy - 5 : cy + 5, :] = 240.0  # right
    pair = write_pair(tmp_path / "in", "sub-01", img, lab, axcodes="LPI")
    units, _ = extract_units(load_pair(*pair), ExtractConfig.subvolume((16, 32, 32), 1.0, align=False))
    samples = Samples(units[:1].astype(np.float32) / 127.5 - 1, np.array([0]), ["L"])
    card = {"dataset": {"spacing": [1.0, 1.0, 1.0]}}
    out = write_nifti(samples, tmp_path / "sv.nii.gz", card)
    nii = nib.as_closest_canonical(nib.load(str(out)).slicer[..., 0])
    assert nib.aff2axcodes(nii.affine) == ("R", "A", "S")
    v = np.asarray(nii.dataobj, dtype=float)  # [x right, y anterior, z superior]
    assert np.allclose(np.abs(np.diag(nii.affine))[:3], 1.0)
    assert v[-4:].mean() > v[:4].mean() + 20  # right block at +x
    front = v[:, -8:].max()
    assert front >= v[:, :8].max() and v[:, -12:].mean() > v[:, :12].mean()  # anterior strip at +y
    assert v[:, :, -10:].mean() > v[:, :, :10].mean()  # brighter bodies at +z (superior)


def test_evaluate_writes_the_volume_report(trained, tmp_path, capsys):
    import json

    from synthvu_core.cli import main

    planted_volumes(patients=7).save(tmp_path / "other")  # another dataset: refused, naming both fingerprints
    assert main(["evaluate", str(trained), "--dataset", str(tmp_path / "other"), "--quiet"]) == 2
    assert "the dataset given is" in capsys.readouterr().err
    ds = planted_volumes()
    ds.save(tmp_path / "ds")
    assert main(["evaluate", str(trained), "--dataset", str(tmp_path / "ds"), "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "TRTR" in said and "chance 0.333" in said and "privacy: inconclusive" in said
    report = json.loads((trained / "report" / "volume_report.json").read_text())
    assert report["privacy"]["attack"] == "pairwise/pixel" and report["privacy"]["level"] == "inconclusive"
    assert report["counts"]["synthetic"] == report["counts"]["real_train"] == 9
    assert report["scalars"]["utility.trtr.balanced_accuracy"] is not None
    assert not (trained / "report" / "report.json").exists()  # never a VU report
    from synthvu_core import modelcard

    text = modelcard.render(trained)
    assert "synthetic spine MRI 3-D sub-volumes" in text
    assert "From the sub-volume evaluation report (9 synthetic" in text
    assert "- TRTR " in text and "- privacy: inconclusive" in text and "No evaluation report" not in text
    from synthvu_core.share import share

    shared = share(trained, tmp_path / "shared")  # what may leave: the report's aggregates travel with the weights
    public = json.loads((shared / "report" / "volume_report.json").read_text())
    assert "numerics" in report and public == {k: v for k, v in report.items() if k != "numerics"}  # not the machine
    assert "From the sub-volume evaluation report" in (shared / "README.md").read_text()
    deck = tmp_path / "deck.html"  # the HTML deck: the report's numbers and a 3-D montage of generated sub-volumes
    assert main(["report", "slides", str(trained), "--out", str(deck)]) == 0
    html = deck.read_text()
    tstr = report["scalars"]["utility.tstr.balanced_accuracy"]
    assert f"data-key='utility.tstr.balanced_accuracy'>{tstr:.3f}</span>" in html
    assert "data:image/png;base64," in html and "three mid-planes per class" in html and "inconclusive" in html
    assert main(["report", "slides", str(trained), str(trained), "--out", str(deck)]) == 2  # alone only
    assert main(["evaluate", str(trained), "--dataset", str(tmp_path / "ds"), "--controls"]) == 2


def test_the_volume_evaluation_runs_on_the_fixed_thread_count(trained, tmp_path, monkeypatch):
    """As the VU evaluation: the sub-volumes are sampled, classified and attacked on EVALUATION_THREADS whatever the
    caller's count (convolutions split over other thread counts round differently, so a 2-core and a 64-core
    machine would report other numbers), and the report records the numerics it ran on."""
    import shutil
    import threading

    from synthvu_core.evaluation import volume
    from synthvu_core.evaluation.threads import EVALUATION_THREADS, numeric_environment
    from synthvu_core.models import registry as volume_registry
    from synthvu_core.models import sampling

    seen: dict[str, set[int]] = {}

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            seen.setdefault(name, set()).add(torch.get_num_threads())
            return fn(*args, **kwargs)

        return wrapped

    lanes: set[tuple[str, int]] = set()
    load = volume_registry.load_generator

    def load_recorded(*args, **kwargs):  # the generator's forward, on each lane
        gen = load(*args, **kwargs)
        forward = gen.forward

        def recorded(*a, **k):
            lanes.add((threading.current_thread().name, torch.get_num_threads()))
            return forward(*a, **k)

        gen.forward = recorded
        return gen

    monkeypatch.setattr(sampling, "sample_uint8", spy("sample", sampling.sample_uint8))
    monkeypatch.setattr(volume, "evaluate_volumes", spy("utility", volume.evaluate_volumes))
    monkeypatch.setattr(volume, "volume_privacy", spy("privacy", volume.volume_privacy))
    monkeypatch.setattr(volume_registry, "load_generator", load_recorded)
    folder = shutil.copytree(trained, tmp_path / "g3d")
    planted_volumes().save(tmp_path / "ds")
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the caller's
    try:
        report = volume.evaluate_volume_generator(folder, dataset=tmp_path / "ds", seeds=(0,), n_synthetic=40)
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(before)
    assert seen == {name: {EVALUATION_THREADS} for name in ("sample", "utility", "privacy")}, seen
    assert len({name for name, _ in lanes}) == 2 and {n for _, n in lanes} == {EVALUATION_THREADS}, lanes
    assert report["numerics"] == numeric_environment() and report["numerics"]["threads"] == EVALUATION_THREADS


def test_evaluate_n_synthetic_then_report_show_and_table(trained, tmp_path, capsys):
    """``evaluate --n-synthetic N`` samples N sub-volumes (it was ignored), and ``report show`` / ``report table``
    read the sub-volume report it writes (they said "no report yet")."""
    import json
    import shutil

    from synthvu_core.cli import main

    folder = shutil.copytree(trained, tmp_path / "g3d")
    planted_volumes().save(tmp_path / "ds")
    assert main(["evaluate", str(folder), "--dataset", str(tmp_path / "ds"), "--n-synthetic", "15", "--quiet"]) == 0
    report = json.loads((folder / "report" / "volume_report.json").read_text())
    assert report["n_synthetic"] == report["counts"]["synthetic"] == report["privacy"]["n_synthetic"] == 15
    capsys.readouterr()
    assert main(["report", "show", str(folder)]) == 0
    assert "sub-volume evaluation: 15 synthetic sub-volumes" in capsys.readouterr().out
    assert main(["report", "table", str(folder)]) == 0
    out = capsys.readouterr().out
    assert sum(line.startswith("| `") for line in out.splitlines()) == 2 and "sub-volumes" in out
