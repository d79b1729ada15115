"""Latent diffusion generator: interface, conditioning, guidance, determinism, resume, loading without pickles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import PIL.Image
import pytest
import torch
from montage_checks import assert_rows_labelled, grid_of
from safetensors.torch import load_file
from vu_rows import vu_row

from synthvu_core.cli import main
from synthvu_core.data.dataset import SplitConfig, VUDataset
from synthvu_core.errors import CheckpointError, SelectionError
from synthvu_core.models import diffusion
from synthvu_core.models.diffusion_training import DiffusionTrainConfig, train_diffusion
from synthvu_core.models.registry import CARD_KEYS, load_card, load_discriminator, load_generator
from synthvu_core.models.sampling import interpolate, sample
from synthvu_core.models.trainlog import MONTAGE_COLS

torch.set_num_threads(1)
VUS = ("C3/C4", "C4/C5", "T5/T6", "T6/T7", "L3/L4", "L4/L5")
LEVEL = {"C": 40, "T": 128, "L": 215}  # planted class signal: each region has its own brightness
TINY_ARCH = dict(ae_channels=(8, 8), latent_channels=2, ae_norm_groups=4, unet_channels=(16, 16), unet_norm_groups=8)


def planted_dataset(patients: int = 8, shape=(2, 16, 16)) -> VUDataset:
    rng = np.random.default_rng(0)
    rows, imgs = [], []
    for p in range(patients):
        for v in VUS:
            rows.append(vu_row(f"p{p}", v))
            imgs.append(np.clip(LEVEL[v[0]] + rng.normal(0, 6, shape), 0, 255).astype(np.uint8))
    return VUDataset.from_units(np.stack(imgs), pd.DataFrame(rows), split=SplitConfig(0.5, 0.25, 0.25, seed=0))


def small(**kw) -> DiffusionTrainConfig:
    base = dict(batch_size=8, checkpoint_every=2, montage_every=0, weights_dtype="float32", device="cpu")
    base.update(kw)
    return DiffusionTrainConfig(**base)


@pytest.fixture(autouse=True)
def tiny_architecture(monkeypatch):
    """Tiny autoencoder and UNet for every test (the defaults are sized for 9 x 64 x 64 VUs)."""
    original = diffusion.DiffusionConfig.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **{**TINY_ARCH, **kwargs})

    monkeypatch.setattr(diffusion.DiffusionConfig, "__init__", init)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny generator trained on the planted dataset (shared by the tests that only read it)."""
    mp = pytest.MonkeyPatch()
    original = diffusion.DiffusionConfig.__init__
    mp.setattr(diffusion.DiffusionConfig, "__init__", lambda self, *a, **k: original(self, *a, **{**TINY_ARCH, **k}))
    try:
        out = tmp_path_factory.mktemp("diffusion") / "g"
        cfg = small(autoencoder_steps=150, steps=300, checkpoint_every=0, guidance=2.0, sampling_steps=6, name="tiny")
        train_diffusion(planted_dataset(), out, cfg, progress=False)
    finally:
        mp.undo()
    return out


def test_requested_class_comes_out(trained):
    gen = load_generator(trained)
    assert isinstance(gen, diffusion.DiffusionGenerator)
    means = {}
    for region in ("C", "T", "L"):
        s = sample(gen, 24, position=region, seed=1)
        assert set(s.positions) == {region}
        means[region] = float(np.mean((s.images + 1) * 127.5))
    # each region's brightness comes out, in the planted order and near the planted value
    assert means["C"] < means["T"] < means["L"]
    for region, level in LEVEL.items():
        assert abs(means[region] - level) < 30, means


def test_guidance_changes_outputs_and_is_chosen_at_sampling_time(trained):
    gen = load_generator(trained)
    assert gen.guidance == 2.0 and gen.sampling_steps == 6  # the card's defaults
    z = torch.randn(6, gen.card["latent_dim"], generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        outs = {}
        for w in (0.0, 1.0, 4.0):
            gen.set_sampling(guidance=w)
            outs[w] = gen(z, y)
    assert not torch.allclose(outs[0.0], outs[1.0], atol=1e-3)
    assert not torch.allclose(outs[1.0], outs[4.0], atol=1e-3)
    # guidance 0 ignores the class: the same noise gives the same VU whatever class is asked
    gen.set_sampling(guidance=0.0)
    with torch.no_grad():
        assert torch.allclose(gen(z, torch.zeros(6, dtype=torch.long)), gen(z, torch.full((6,), 2)), atol=1e-5)
    with pytest.raises(SelectionError):
        diffusion.set_sampling(gen, guidance=-1.0)
    with pytest.raises(SelectionError):
        diffusion.set_sampling(gen, steps=0)


def test_same_seed_same_vus_whatever_the_batch(trained):
    gen = load_generator(trained)
    a = sample(gen, 10, seed=3, batch_size=10)
    b = sample(gen, 10, seed=3, batch_size=3)
    c = sample(gen, 10, seed=4)
    np.testing.assert_allclose(a.images, b.images, atol=1e-5)
    assert np.array_equal(a.labels, b.labels)
    assert not np.allclose(a.images, c.images)
    assert a.images.min() >= -1 and a.images.max() <= 1


def test_large_batches_are_decoded_in_chunks_with_the_same_numbers(trained, monkeypatch):
    import torch

    gen = load_generator(trained)
    n = diffusion.DECODE_CHUNK * 2 + 3
    lat = torch.randn(n, *gen.config.latent_shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        whole = gen.decoder(gen.post_quant_conv(lat / gen.config.latent_scale)).clamp(-1, 1)
        sizes = []
        gen.decoder.register_forward_pre_hook(lambda m, args: sizes.append(len(args[0])))
        chunked = gen.decode(lat)
    assert sizes == [diffusion.DECODE_CHUNK, diffusion.DECODE_CHUNK, 3]
    assert torch.allclose(chunked, whole, atol=1e-6)


def test_interpolation_mixes_classes(trained):
    s = interpolate(trained, "C", "L", steps=5, seed=0)
    assert s.positions[0] == "C" and s.positions[-1] == "L"
    brightness = ((s.images + 1) * 127.5).mean(axis=(1, 2, 3))
    assert brightness[0] < brightness[2] < brightness[-1]


def test_card_weights_and_loading_without_pickles(trained, tmp_path, monkeypatch):
    card = load_card(trained)
    assert set(CARD_KEYS) <= set(card) and card["architecture"]["name"] == "diffusion"
    assert card["dp"] is None and card["discriminator"]["kept"] is False
    tr = card["training"]
    assert (tr["sampler"], tr["sampling_steps"], tr["guidance"]) == ("rflow-euler", 6, 2.0)
    assert tr["autoencoder_steps"] == 150 and tr["diffusion_steps"] == 300 and tr["steps"] == 450
    assert card["latent_dim"] == 2 * 8 * 8
    tensors = load_file(str(trained / "generator.safetensors"))
    assert any(k.startswith("unet.") for k in tensors) and any(k.startswith("decoder.") for k in tensors)
    assert not any(k.startswith(("encoder.", "quant_conv")) for k in tensors)  # the encoder is never released
    assert load_discriminator(trained) is None

    def no_torch_load(*a, **k):
        raise AssertionError("torch.load called while loading a generator")

    monkeypatch.setattr(torch, "load", no_torch_load)
    load_generator(trained)
    # a pickled generator in place of the safetensors file is refused, not unpickled
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "card.json").write_text(json.dumps(card))
    (bad / "generator.pt").write_bytes(b"\x80\x04not really")
    with pytest.raises(CheckpointError, match="pickled weights are never loaded"):
        load_generator(bad)
    # weights that do not fit the card's architecture are refused
    wrong = dict(card, architecture=dict(card["architecture"], unet_channels=[32, 32]))
    (bad / "card.json").write_text(json.dumps(wrong))
    (bad / "generator.safetensors").write_bytes((trained / "generator.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="architecture"):
        load_generator(bad)


def test_a_diffusion_card_remembers_its_dataset_folder_as_the_acgan_card_does(tmp_path):
    """`evaluate MODEL` finds a saved user dataset from the card alone, whatever the architecture."""
    from synthvu_core.data.build import card_dataset, dataset_of_card

    folder = planted_dataset(patients=4).save(tmp_path / "vus")
    ds = VUDataset.load(folder)
    out = train_diffusion(ds, tmp_path / "g", small(autoencoder_steps=1, steps=1), progress=False)
    card = load_card(out)
    assert card["dataset"] == json.loads(json.dumps(card_dataset(ds, card["dataset"]["n_train"])))
    assert card["dataset"]["path"] == str(folder) and "patients" not in card["dataset"]["split"]
    assert dataset_of_card(card, out).fingerprint == ds.fingerprint


def test_resume_across_the_phase_boundary_equals_one_run(tmp_path):
    ds = planted_dataset(patients=4)
    one = train_diffusion(ds, tmp_path / "one", small(autoencoder_steps=2, steps=3), progress=False)
    train_diffusion(ds, tmp_path / "two", small(autoencoder_steps=2, steps=1), progress=False)
    two = train_diffusion(ds, tmp_path / "two", small(autoencoder_steps=2, steps=3, resume=True), progress=False)
    a = load_file(str(one / "training" / "checkpoint" / "state.safetensors"))
    b = load_file(str(two / "training" / "checkpoint" / "state.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert load_card(two)["training"]["steps"] == 5
    assert load_card(one)["architecture"]["latent_scale"] == load_card(two)["architecture"]["latent_scale"]
    # other settings are not resumed from
    with pytest.raises(CheckpointError, match="other settings"):
        train_diffusion(ds, tmp_path / "two", small(autoencoder_steps=3, steps=3, resume=True), progress=False)


def test_cli_train_sample_and_refusals(tmp_path, monkeypatch, capsys, trained):
    ds = planted_dataset(patients=4)
    ds.save(tmp_path / "ds")
    out = tmp_path / "cli"
    args = [
        "train",
        "--dataset",
        str(tmp_path / "ds"),
        "--arch",
        "diffusion",
        "--out",
        str(out),
        "--autoencoder-steps",
        "1",
        "--steps",
        "1",
        "--batch-size",
        "4",
        "--device",
        "cpu",
        "--quiet",
        "--guidance",
        "3",
        "--sampling-steps",
        "2",
    ]
    assert main(args) == 0
    card = load_card(out)
    assert card["architecture"]["guidance"] == 3.0 and "--arch diffusion" in card["training"]["command"]
    assert main(["train", *args[1:], "--target-epsilon", "5"]) == 2
    assert "--target-epsilon applies to the AC-GAN only" in capsys.readouterr().err
    assert (
        main(
            [
                "sample",
                str(trained),
                "--n",
                "3",
                "--guidance",
                "0.5",
                "--sampling-steps",
                "3",
                "--out",
                str(tmp_path / "s.npz"),
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "s.npz")["images"].shape == (3, 2, 16, 16)
    assert main(["sample", str(trained), "--n", "3", "--guidance", "-2", "--out", str(tmp_path / "t.npz")]) == 2


def test_benchmark_case_times_diffusion_beside_both_acgans(tmp_path):
    from benchmarks.run import run_benchmarks

    sizes = {"diffusion.batch": 2, "diffusion.shape": [9, 32, 32]}
    results = run_benchmarks(
        ["diffusion"], quick=True, repeats=2, warmup=1, threads=1, out_dir=tmp_path, sizes=sizes, log=lambda m: None
    )
    case = json.loads((tmp_path / "latest.json").read_text())["cases"]["diffusion"]
    assert case["status"] == "ok", case.get("reason")
    rows = case["rows"]
    assert [r["reference_name"] for r in rows] == ["pgan", "default", "pgan", "pgan"]
    first, last = rows[0], rows[-1]
    assert first["extra"]["model"] == "random weights" and first["goal"]["met"] == (first["project"]["median"] >= 17)
    assert last["project"]["values"] == pytest.approx([5000 / v for v in first["project"]["values"]])
    assert results["cases"]["diffusion"]["status"] == "ok"


def _tiles(png, size: int) -> list[np.ndarray]:
    """The tiles of a training montage (1-pixel gaps, no margin)."""
    from PIL import Image

    img = np.asarray(Image.open(png))
    rows = (img.shape[0] + 1) // (size + 1)
    return list(grid_of(img, rows, MONTAGE_COLS, size, size).reshape(-1, size, size))


def test_training_montages_hold_generated_vus_only(tmp_path):
    """A training montage is shown and shared as synthetic: no tile is a training VU, and the autoencoder
    phase (nothing generated yet) writes none."""
    from synthvu_core.models.trainlog import montages

    ds = planted_dataset()
    out = tmp_path / "g"
    cfg = small(autoencoder_steps=3, steps=6, checkpoint_every=0, montage_every=1, sampling_steps=2, name="m")
    train_diffusion(ds, out, cfg, progress=False)
    ae_steps = load_card(out)["training"]["autoencoder_steps"]
    written = montages(out)
    assert written and all(step > ae_steps for step, _ in written), [s for s, _ in written]
    real = {ds.images[i][ds.images.shape[1] // 2].tobytes() for i in range(len(ds.images))}
    for step, png in written:
        tiles = _tiles(png, ds.images.shape[-1])
        assert len(tiles) == 3 * 8
        classes = load_card(out)["classes"]
        assert_rows_labelled(np.asarray(PIL.Image.open(png)), classes, ds.images.shape[-1], ds.images.shape[-1])
        assert not any(t.tobytes() in real for t in tiles), f"a training VU in the montage of step {step}"


def test_shipped_training_montages_are_from_the_generation_phase():
    """No shipped montage dates from a diffusion generator's autoencoder phase (real VUs over reconstructions)."""
    from synthvu_core.models.trainlog import montages

    root = Path(__file__).resolve().parents[1] / "models"
    checked = 0
    for card_path in sorted(root.glob("*/card.json")):
        ae_steps = (json.loads(card_path.read_text()).get("training") or {}).get("autoencoder_steps")
        if ae_steps is None:
            continue
        early = [step for step, _ in montages(card_path.parent) if step <= ae_steps]
        assert not early, f"{card_path.parent.name}: montages of the autoencoder phase at steps {early}"
        checked += 1
    assert checked >= 1
