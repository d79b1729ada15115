"""Training: seeded, exact resume, train split only, DP-SGD clipping and accounting, card contents."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from synthvu_core.data.dataset import SplitConfig, VUDataset
from synthvu_core.models.registry import CARD_KEYS, load_card
from synthvu_core.models.training import TrainConfig, Trainer, train

torch.set_num_threads(1)
VUS = ("T11/T12", "T12/L1", "L1/L2", "L2/L3", "L3/L4", "L4/L5")


def tiny_dataset(shape=(1, 32, 32), patients=4) -> VUDataset:
    rng = np.random.default_rng(0)
    rows, imgs = [], []
    for p in range(patients):
        for v in VUS:
            rows.append(dict(patient_id=f"p{p}", level=v, region=v[0], source=f"p{p}.nii.gz", center_vox_0=0, center_vox_1=0,
                             center_vox_2=0, center_world_x=0, center_world_y=0, center_world_z=0, spacing_mm=1.0,
                             slice_mm=2.0, crop_mm=32.0))
            imgs.append(rng.integers(0, 256, shape, dtype=np.uint8))
    return VUDataset.from_units(np.stack(imgs), pd.DataFrame(rows), split=SplitConfig(0.5, 0.25, 0.25, seed=0))


def small(**kw) -> TrainConfig:
    base = dict(width=4, d_width=4, batch_size=4, checkpoint_every=2, montage_every=0, weights_dtype="float32", device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def checkpoint_tensors(folder):
    return load_file(str(folder / "training" / "checkpoint" / "state.safetensors"))


@pytest.mark.parametrize("private", [False, True])
def test_resume_two_plus_two_equals_four(tmp_path, private):
    ds = tiny_dataset()
    dp = dict(noise_multiplier=1.0) if private else {}
    one = train(ds, tmp_path / "one", small(steps=4, **dp), progress=False)
    train(ds, tmp_path / "two", small(steps=2, **dp), progress=False)
    two = train(ds, tmp_path / "two", small(steps=4, resume=True, **dp), progress=False)
    a, b = checkpoint_tensors(one), checkpoint_tensors(two)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert load_card(two)["training"]["steps"] == 4
    if private:
        assert load_card(two)["dp"]["epsilon"] == pytest.approx(load_card(one)["dp"]["epsilon"])
    # and the run without resume really started afresh: other weights after 2 steps
    fresh = checkpoint_tensors(train(ds, tmp_path / "three", small(steps=2, **dp), progress=False))
    assert not torch.equal(fresh["G.net.0.weight"], a["G.net.0.weight"])


def test_seed_changes_weights(tmp_path):
    ds = tiny_dataset()
    a = checkpoint_tensors(train(ds, tmp_path / "a", small(steps=2, seed=0), progress=False))
    b = checkpoint_tensors(train(ds, tmp_path / "b", small(steps=2, seed=0), progress=False))
    c = checkpoint_tensors(train(ds, tmp_path / "c", small(steps=2, seed=1), progress=False))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["G_ema.net.0.weight"], c["G_ema.net.0.weight"])


def test_trains_on_train_split_only():
    ds = tiny_dataset()
    trainer = Trainer(ds, "unused", small(steps=1))
    train_idx = ds.indices("train")
    assert trainer.n_train == len(train_idx) < len(ds)
    assert torch.equal(trainer.images.cpu(), torch.from_numpy(ds.images[train_idx]))


def test_card_and_folder(tmp_path):
    ds = tiny_dataset()
    out = train(ds, tmp_path / "g", small(steps=2, montage_every=2, scheme="level", name="demo", weights_dtype="float16"),
                progress=False)
    card = json.loads((out / "card.json").read_text())
    assert set(CARD_KEYS) <= set(card)
    assert card["name"] == "demo" and card["scheme"] == "level" and card["classes"] == list(VUS)
    assert card["dataset"]["fingerprint"] == ds.fingerprint
    assert "patients" not in card["dataset"]["split"]
    assert card["dp"] is None and card["discriminator"] == {"kept": True, "private": True}
    assert card["training"]["steps"] == 2 and card["training"]["seconds"] > 0
    assert sorted(p.name for p in (out / "training").glob("*.png"))
    assert all(v.dtype == torch.float16 for v in load_file(str(out / "generator.safetensors")).values())
    no_d = train(ds, tmp_path / "nod", small(steps=1, keep_discriminator=False), progress=False)
    assert not (no_d / "discriminator.safetensors").exists()
    assert not (no_d / "training" / "checkpoint").exists()  # the checkpoint holds D
    assert load_card(no_d)["discriminator"]["kept"] is False


def test_dp_clips_per_sample_gradients_and_spends_epsilon():
    ds = tiny_dataset()
    clip = 1e-3
    trainer = Trainer(ds, "unused", small(steps=10, noise_multiplier=0.0, max_grad_norm=clip))
    seen = {}

    def hook(opt):
        grads = [p.grad_sample.detach().clone() for p in opt.params]
        n = grads[0].shape[0]
        norms = torch.stack([g.reshape(n, -1).norm(dim=1) for g in grads], 1).norm(dim=1)
        factor = (clip / (norms + 1e-6)).clamp(max=1.0)
        seen["norms"], seen["clipped"] = norms, norms * factor
        seen["expected"] = [torch.einsum("i,i...", factor, g) for g in grads]
        seen["summed"] = [p.summed_grad.detach().clone() for p in opt.params]

    trainer.opt_D.step_hook = hook
    eps = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3):
            trainer.step()
            eps.append(trainer.epsilon())
            # the G step added no per-sample gradients to D: rows = real + fake of the D step only
            assert all(p.grad_sample.shape[0] == trainer.last["real"] + trainer.batch_size for p in trainer.opt_D.params)
    assert (seen["norms"] > clip).all()  # clipping was active ...
    assert (seen["clipped"] <= clip * (1 + 1e-4)).all()  # ... and bounded every sample's norm
    for e, s in zip(seen["expected"], seen["summed"]):
        torch.testing.assert_close(s, e)
    assert trainer.accountant.history[-1][2] == 3  # one accounting step per D step, none for G
    # epsilon grows with steps under a real noise multiplier
    noisy = Trainer(ds, "unused", small(steps=10, noise_multiplier=1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        noisy.step()
        e1 = noisy.epsilon()
        noisy.step()
        e2 = noisy.epsilon()
    assert 0 < e1 < e2


def test_target_epsilon_is_met(tmp_path):
    ds = tiny_dataset()
    out = train(ds, tmp_path / "dp", small(steps=3, target_epsilon=8.0, delta=1e-3), progress=False)
    dp = load_card(out)["dp"]
    assert dp["epsilon"] <= 8.0 * 1.02 and dp["epsilon"] > 4.0
    assert dp["delta"] == 1e-3 and dp["noise_multiplier"] > 0
