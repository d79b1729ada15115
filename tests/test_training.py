"""Training: seeded, exact resume, train split only, DP-SGD clipping and accounting, card contents."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from montage_checks import assert_rows_labelled
from PIL import Image
from safetensors.torch import load_file
from vu_rows import vu_row

from synthvu_core.data.dataset import SplitConfig, VUDataset
from synthvu_core.machine import cpu_model
from synthvu_core.models.dp import DPConfig
from synthvu_core.models.registry import CARD_KEYS, load_card
from synthvu_core.models.training import ArchOverrides, TrainConfig, Trainer, train

torch.set_num_threads(1)
VUS = ("T11/T12", "T12/L1", "L1/L2", "L2/L3", "L3/L4", "L4/L5")


def tiny_dataset(shape=(1, 32, 32), patients=4, prefix="p", seed=0) -> VUDataset:
    rng = np.random.default_rng(seed)
    rows, imgs = [], []
    for p in range(patients):
        for v in VUS:
            rows.append(vu_row(f"{prefix}{p}", v))
            imgs.append(rng.integers(0, 256, shape, dtype=np.uint8))
    return VUDataset.from_units(np.stack(imgs), pd.DataFrame(rows), split=SplitConfig(0.5, 0.25, 0.25, seed=0))


def public_dataset(prefix="pub", seed=1, recipe_seed=9) -> VUDataset:
    """A tiny phantom-like dataset (its card names a recipe: public data) of other patients than tiny_dataset's."""
    ds = tiny_dataset(prefix=prefix, seed=seed)
    ds.card["recipe"] = {"name": "test-phantom", "seed": recipe_seed}
    return ds


def small(dp: DPConfig | None = None, **kw) -> TrainConfig:
    base = dict(
        overrides=ArchOverrides(width=4, d_width=4),
        batch_size=4,
        checkpoint_every=2,
        montage_every=0,
        weights_dtype="float32",
        device="cpu",
    )
    base.update(kw)
    return TrainConfig(dp=dp, **base)


def checkpoint_tensors(folder):
    return load_file(str(folder / "training" / "checkpoint" / "state.safetensors"))


def fixed_entropy(monkeypatch, value=12345):
    """Pin the mechanism's OS-entropy seed (only to compare an interrupted run with an uninterrupted one)."""
    import synthvu_core.models.dp as dp

    monkeypatch.setattr(dp, "os_entropy_seed", lambda: value)


@pytest.mark.parametrize("private", [False, True])
def test_resume_two_plus_two_equals_four(tmp_path, monkeypatch, private):
    ds = tiny_dataset()
    dp = DPConfig(noise_multiplier=1.0) if private else None
    if private:
        fixed_entropy(monkeypatch)
    one = train(ds, tmp_path / "one", small(steps=4, dp=dp), progress=False)
    if private:  # the resumed run draws another entropy seed: its noise must come from the checkpoint
        fixed_entropy(monkeypatch, 999)
    train(ds, tmp_path / "two", small(steps=2, dp=dp), progress=False)
    if private:
        fixed_entropy(monkeypatch, 777)
    two = train(ds, tmp_path / "two", small(steps=4, resume=True, dp=dp), progress=False)
    a, b = checkpoint_tensors(one), checkpoint_tensors(two)
    if (
        private
    ):  # the first run and the interrupted one started from other entropy: compare the resume with a fresh rerun
        fixed_entropy(monkeypatch, 999)
        ref = train(ds, tmp_path / "ref", small(steps=4, dp=dp), progress=False)
        a = checkpoint_tensors(ref)
        assert not torch.equal(checkpoint_tensors(one)["D.adv_head.weight"], a["D.adv_head.weight"])  # entropy matters
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert load_card(two)["training"]["steps"] == 4
    if private:
        assert load_card(two)["dp"]["epsilon"] == pytest.approx(load_card(one)["dp"]["epsilon"])
    # and the run without resume really started afresh: other weights after 2 steps
    fresh = checkpoint_tensors(train(ds, tmp_path / "three", small(steps=2, dp=dp), progress=False))
    assert not torch.equal(fresh["G.net.0.weight"], a["G.net.0.weight"])


def test_same_card_seed_draws_different_dp_noise(tmp_path):
    ds = tiny_dataset()
    dp = DPConfig(noise_multiplier=1.0)
    a = checkpoint_tensors(train(ds, tmp_path / "a", small(steps=2, seed=0, dp=dp), progress=False))
    b = checkpoint_tensors(train(ds, tmp_path / "b", small(steps=2, seed=0, dp=dp), progress=False))
    assert torch.equal(a["rng.noise"], b["rng.noise"])  # the card's seed still fixes G's noise ...
    assert not torch.equal(a["rng.private"], b["rng.private"])  # ... but not the mechanism's
    assert not torch.equal(a["D.adv_head.weight"], b["D.adv_head.weight"])


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
    out = train(
        ds,
        tmp_path / "g",
        small(steps=2, montage_every=2, scheme="level", name="demo", weights_dtype="float16"),
        progress=False,
    )
    card = json.loads((out / "card.json").read_text())
    assert set(CARD_KEYS) <= set(card)
    assert card["name"] == "demo" and card["scheme"] == "level" and card["classes"] == list(VUS)
    assert card["dataset"]["fingerprint"] == ds.fingerprint
    assert "patients" not in card["dataset"]["split"]
    assert card["dp"] is None and card["discriminator"] == {"kept": True, "private": True}
    assert card["training"]["steps"] == 2 and card["training"]["seconds"] > 0
    numerics = card["training"]["numerics"]  # what a bit-for-bit rerun also needs
    assert numerics["torch"] == torch.__version__ and numerics["threads"] == torch.get_num_threads()
    assert numerics["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert numerics["cpu"] == cpu_model()  # one kernel level, two CPU types: other weights (docs/real-data.md)
    (png,) = sorted((out / "training").glob("montage_step*.png"))
    assert_rows_labelled(np.asarray(Image.open(png)), list(VUS), 32, 32)  # one row per class, labelled with it
    assert all(v.dtype == torch.float16 for v in load_file(str(out / "generator.safetensors")).values())
    no_d = train(ds, tmp_path / "nod", small(steps=1, keep_discriminator=False), progress=False)
    assert not (no_d / "discriminator.safetensors").exists()
    assert not (no_d / "training" / "checkpoint").exists()  # the checkpoint holds D
    assert load_card(no_d)["discriminator"]["kept"] is False


def test_removing_one_patient_moves_the_clipped_sum_by_at_most_the_clip_norm():
    from synthvu_core.models.dp import PatientDPOptimizer, clipped_sum

    gen = torch.Generator().manual_seed(0)
    sizes = [1, 3, 5, 2, 4]
    position = torch.cat([torch.full((n,), p) for p, n in enumerate(sizes)])
    per_vu = {
        "w": torch.randn(len(position), 3, 4, generator=gen) * 5,
        "b": torch.randn(len(position), 4, generator=gen),
    }
    clip = 0.7
    per_patient = PatientDPOptimizer.sum_per_patient(per_vu, position, len(sizes))
    norms = torch.stack([g.reshape(len(sizes), -1).norm(dim=1) for g in per_patient.values()], 1).norm(dim=1)
    assert (norms > clip).all()  # every patient's sum would exceed the bound unclipped
    full = clipped_sum(per_patient, clip)
    for gone in range(len(sizes)):
        keep = position != gone
        pos = position[keep]
        pos = pos - (pos > gone).long()  # renumber the remaining patients
        rest = PatientDPOptimizer.sum_per_patient({k: v[keep] for k, v in per_vu.items()}, pos, len(sizes) - 1)
        without = clipped_sum(rest, clip)
        diff = torch.cat([(full[k] - without[k]).flatten() for k in full]).norm()
        assert diff <= clip * (1 + 1e-5)
        assert diff > clip * 0.99  # clipped exactly to the bound here
    # per VU instead of per patient: removing patient 2 (five VUs) moves the sum by up to 5 x the clip norm
    by_vu = clipped_sum(per_vu, clip)
    keep = position != 2
    without_vu = clipped_sum({k: v[keep] for k, v in per_vu.items()}, clip)
    assert torch.cat([(by_vu[k] - without_vu[k]).flatten() for k in by_vu]).norm() > clip


def test_private_gradient_is_the_clipped_sum_of_per_patient_gradients():
    ds = tiny_dataset(patients=8)
    clip = 1e-3
    trainer = Trainer(
        ds, "unused", small(steps=10, dp=DPConfig(noise_multiplier=1.0, clip_norm=clip, patients_per_step=4))
    )
    opt = trainer.private
    opt.noise_multiplier = 0.0  # the mechanism without its noise: only the clipped sum is compared here
    assert trainer.n_patients == 4 and trainer.sample_rate == 1.0  # every patient sampled: never an empty batch
    idx, pos = opt.sample_patients()
    assert len(idx) and torch.equal(
        torch.from_numpy(trainer.patient_of_vu)[idx].unique().numel() * torch.ones(1), (pos.max() + 1) * torch.ones(1)
    )
    x = trainer.images[idx].float() / 127.5 - 1.0
    y = trainer.labels[idx]
    a, aux_fake = trainer.arch.aux_weight, trainer.arch.aux_fake
    from synthvu_core.models.training import discriminator_loss

    def loss_of_one(adv, cls, yy):
        return discriminator_loss(adv, cls, torch.ones_like(adv), yy, a, aux_fake).sum()

    got = opt.private_gradient(loss_of_one, x, y, pos)
    # the same by plain autograd, one patient at a time
    names = [k for k, _ in trainer.D.named_parameters()]
    expected = {k: torch.zeros_like(p) for k, p in trainer.D.named_parameters()}
    for p in range(int(pos.max()) + 1):
        trainer.D.zero_grad()
        adv, cls = trainer.D(x[pos == p])
        discriminator_loss(adv, cls, torch.ones_like(adv), y[pos == p], a, aux_fake).sum().backward()
        g = {k: q.grad.detach().clone() for k, q in trainer.D.named_parameters()}
        norm = torch.cat([g[k].flatten() for k in names]).norm()
        assert norm > clip
        for k in names:
            expected[k] += g[k] * min(1.0, clip / (float(norm) + 1e-6))
    for k in names:
        torch.testing.assert_close(got[k], expected[k] / opt.expected_vus, rtol=1e-4, atol=1e-9)


def test_dp_generated_vus_transforms_do_not_depend_on_the_private_batch():
    """Under DP the real VUs' mirroring and augmentation draw from the mechanism's stream: the run's augmentation
    stream, which draws the generated VUs' transforms (their gradient gets no noise), moves the same however many
    real VUs the Poisson sampling chose."""
    ds = tiny_dataset(patients=8)
    sizes, states = set(), []
    for seed in range(6):
        t = Trainer(ds, "unused", small(steps=2, augment="translation,color", mirror=True,
                                        dp=DPConfig(noise_multiplier=1.0)))
        t.private.generator.manual_seed(seed)
        batch = t._real_batch
        t._real_batch = lambda b=batch: (lambda out: (sizes.add(len(out[0])), out)[1])(b())
        t.step()
        states.append(t.gen_augment.get_state())
    assert len(sizes) > 1  # the private batches differed in size
    assert all(torch.equal(states[0], s) for s in states[1:])


def test_dp_spends_epsilon_per_d_step_only():
    ds = tiny_dataset()
    noisy = Trainer(ds, "unused", small(steps=10, dp=DPConfig(noise_multiplier=1.0)))
    noisy.step()
    e1 = noisy.epsilon()
    noisy.step()
    e2 = noisy.epsilon()
    assert 0 < e1 < e2
    assert noisy.accountant.history[-1][2] == 2  # one accounting step per D step, none for G


def test_delta_defaults_and_limits():
    from synthvu_core.errors import SelectionError
    from synthvu_core.models.dp import check_delta, default_delta

    assert default_delta(50) == 1e-5 and default_delta(500_000) == pytest.approx(2e-7)
    assert check_delta(None, 2) == 1e-5
    with pytest.raises(SelectionError, match="1/N_patients"):
        check_delta(0.5, 2)
    assert check_delta(1e-5, 50) == 1e-5 and check_delta(1e-7, 500_000) == 1e-7
    for delta, n in ((0.019, 50), (9e-4, 1000), (2e-5, 50), (3e-7, 500_000)):  # below 1/N, not well below it
        with pytest.raises(SelectionError, match=r"not well below 1/N_patients.*min\(1e-5"):
            check_delta(delta, n)
    ds = tiny_dataset()  # two train patients
    with pytest.raises(SelectionError, match="1/N_patients"):
        Trainer(ds, "unused", small(steps=1, dp=DPConfig(noise_multiplier=1.0, delta=0.5)))


def test_log_csv_rows_survive_resume_without_duplicates(tmp_path):
    from synthvu_core.models.training import LOG_COLUMNS, read_log

    ds = tiny_dataset()
    out = train(ds, tmp_path / "g", small(steps=2, dp=DPConfig(noise_multiplier=1.0)), progress=False)
    log = out / "training" / "log.csv"
    rows = read_log(log)
    assert [int(r["step"]) for r in rows] == [1, 2] and tuple(rows[0]) == LOG_COLUMNS
    assert 0 < float(rows[0]["epsilon"]) < float(rows[1]["epsilon"])
    assert rows[0]["aux_d"] == ""  # no loss on private VUs is logged
    with log.open("a") as f:  # a row written after the checkpoint by an interrupted run
        f.write("3,9,9,9,9,9,9,9\n")
    train(ds, out, small(steps=4, resume=True, dp=DPConfig(noise_multiplier=1.0)), progress=False)
    rows = read_log(log)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert rows[2]["loss_d"] != "9"


def test_init_from_starts_from_the_pretrained_weights(tmp_path):
    from synthvu_core.errors import SelectionError
    from synthvu_core.models.registry import read_weights

    ds = tiny_dataset()
    pre = train(public_dataset(), tmp_path / "pre", small(steps=2), progress=False)
    tl = ["T", "L"]
    trainer = Trainer(ds, tmp_path / "ft", small(steps=1, init_from=str(pre), classes=tl,
                                                 dp=DPConfig(noise_multiplier=1.0)))
    g = read_weights(pre / "generator.safetensors")
    assert all(torch.equal(v, g[k]) for k, v in trainer.G.state_dict().items())
    d = read_weights(pre / "discriminator.safetensors")
    assert all(torch.equal(v, d[k]) for k, v in trainer.D.state_dict().items())
    out = train(
        ds, tmp_path / "ft", small(steps=1, init_from=str(pre), classes=tl, dp=DPConfig(noise_multiplier=1.0)),
        progress=False,
    )
    assert load_card(out)["training"]["init_from"]["name"] == "pre"
    with pytest.raises(SelectionError, match="init-from"):
        Trainer(ds, tmp_path / "x", small(steps=1, init_from=str(pre), overrides=ArchOverrides(width=8)))


def test_training_arguments_are_refused_before_any_work():
    from synthvu_core.errors import SelectionError

    for bad, match in (
        (dict(epochs=0.0), "--epochs"),
        (dict(checkpoint_every=-1), "--checkpoint-every"),
        (dict(steps=0), "--steps"),
        (dict(batch_size=0), "--batch-size"),
        (dict(dp=DPConfig()), "exactly one"),
        (dict(dp=DPConfig(noise_multiplier=1.0, clip_norm=0)), "clip"),
        (dict(dp=DPConfig(noise_multiplier=0.0)), "no noise is no differential privacy"),
        (dict(dp=DPConfig(target_epsilon=float("inf"))), "epsilon = inf is no differential privacy"),
        (dict(classes=["L", "X"]), "--classes"),
    ):
        with pytest.raises(SelectionError, match=match):
            small(**bad).validate()


def test_target_epsilon_is_met(tmp_path):
    ds = tiny_dataset()
    out = train(
        ds, tmp_path / "dp", small(steps=3, dp=DPConfig(target_epsilon=8.0, delta=1e-6)), progress=False
    )
    card = load_card(out)
    dp = card["dp"]
    assert dp["epsilon"] <= 8.0 * 1.02 and dp["epsilon"] > 4.0
    assert dp["delta"] == 1e-6 and dp["noise_multiplier"] > 0
    assert dp["unit"] == "patient" and dp["n_patients"] == 2 and dp["steps"] == 3
    assert dp["neighbouring"].startswith("add or remove one patient")
    assert dp["checkpoint"].startswith("private material")
    assert card["classes"] == ["C", "T", "L"] and card["class_prior"] == [1 / 3] * 3  # the scheme's, not the data's
    led = card["privacy_ledger"]  # in-memory dataset: this run alone, composed by RDP = its own epsilon
    assert led["runs"] == 1 and led["composed_epsilon"] == pytest.approx(dp["epsilon"], rel=1e-6)
    assert dp["noise_source"] == "os entropy" and dp["clip_norm"] == 1.0


def test_init_from_a_region_generator_starts_each_level_from_its_region(tmp_path):
    """Fine-tuning a region generator on levels: every per-class row of G and D starts from the level's region."""
    from synthvu_core.errors import SelectionError
    from synthvu_core.models.registry import read_weights

    ds = tiny_dataset()
    pre = train(ds, tmp_path / "pre", small(steps=1, scheme="region"), progress=False)
    tr = Trainer(ds, tmp_path / "ft", small(steps=1, scheme="level", init_from=str(pre)))
    old = load_card(pre)["classes"]
    assert tr.classes == list(VUS) and tr.arch.n_classes == len(VUS)
    source = [old.index({"T11/T12": "T", "T12/L1": "T"}.get(c, "L")) for c in VUS]
    g, d = read_weights(pre / "generator.safetensors"), read_weights(pre / "discriminator.safetensors")
    for k, v in tr.G.state_dict().items():
        if k.startswith("modulation"):
            assert torch.equal(v, g[k][source]), k
        elif k == "net.0.weight":  # [z (latent), one-hot class] -> the class rows are the trailing ones
            latent = tr.arch.latent_dim
            assert torch.equal(v[:latent], g[k][:latent]) and torch.equal(v[latent:], g[k][latent:][source])
        else:
            assert torch.equal(v, g[k]), k
    assert torch.equal(tr.D.state_dict()["class_head.weight"], d["class_head.weight"][source])
    assert torch.equal(tr.D.state_dict()["adv_head.weight"], d["adv_head.weight"])
    out = train(ds, tmp_path / "ft", small(steps=1, scheme="level", init_from=str(pre)), progress=False)
    assert load_card(out)["training"]["init_from"]["classes"]["L4/L5"] == "L"
    level = train(ds, tmp_path / "lv", small(steps=1, scheme="level"), progress=False)
    with pytest.raises(SelectionError, match="no counterpart"):  # a level has no region generator's class
        Trainer(ds, tmp_path / "back", small(steps=1, scheme="region", init_from=str(level)))


def test_private_heads_train_only_the_heads_and_keep_the_body(tmp_path):
    from synthvu_core.errors import SelectionError

    ds = tiny_dataset()
    pre = train(public_dataset(), tmp_path / "pre", small(steps=1), progress=False)
    dp = DPConfig(noise_multiplier=1.0, private_layers="heads")
    tr = Trainer(ds, tmp_path / "ft", small(steps=2, init_from=str(pre), dp=dp, classes=["T", "L"]))
    before = {k: v.clone() for k, v in tr.D.state_dict().items()}
    tr.step()
    tr.step()
    after = tr.D.state_dict()
    for k in before:
        moved = not torch.equal(before[k], after[k])
        assert moved == (k.split(".")[0] in ("adv_head", "class_head")), k
    assert {k.split(".")[0] for k, _ in tr.private.trainable()} == {"adv_head", "class_head"}
    with pytest.raises(SelectionError, match="init-from"):
        Trainer(ds, tmp_path / "x", small(steps=1, dp=DPConfig(noise_multiplier=1.0, private_layers="heads")))


def test_generated_gradients_are_clipped_per_vu():
    """The public side of a private D step: each generated VU's gradient clipped at C, summed, / batch."""
    from synthvu_core.models.dp import PatientDPOptimizer
    from synthvu_core.models.training import discriminator_loss

    ds = tiny_dataset()
    tr = Trainer(ds, "/nonexistent-unused", small(steps=1, dp=DPConfig(noise_multiplier=1.0, clip_norm=0.01)))
    opt: PatientDPOptimizer = tr.private
    x = torch.randn(3, *ds.shape)
    y = torch.tensor([0, 1, 2]) % len(tr.classes)

    def loss_of_one(adv, cls, yy):
        return discriminator_loss(adv, cls, torch.zeros_like(adv), yy, 1.0, False).sum()

    got = opt.public_gradient(loss_of_one, x, y, divisor=4.0)
    want = {k: torch.zeros_like(p) for k, p in tr.D.named_parameters()}
    for i in range(3):  # brute force: one VU at a time
        tr.D.zero_grad()
        adv, cls = tr.D(x[i : i + 1])
        loss_of_one(adv, cls, y[i : i + 1]).backward()
        grads = {k: p.grad.clone() for k, p in tr.D.named_parameters()}
        norm = torch.sqrt(sum((g**2).sum() for g in grads.values()))
        assert norm > 0.01  # the clip binds here
        for k in want:
            want[k] += grads[k] * min(1.0, 0.01 / float(norm)) / 4.0
    for k in want:
        assert torch.allclose(got[k], want[k], atol=1e-6, rtol=1e-4), k


def test_transfer_reorders_per_class_rows_even_when_the_class_count_is_unchanged():
    """Same number of classes in another order: the per-class rows follow their classes, the rest is kept."""
    from dataclasses import replace

    from synthvu_core.models import acgan
    from synthvu_core.models.training import transfer_weights

    arch = acgan.architecture("default", (1, 32, 32), 3, width=4, d_width=4)
    G, D = acgan.build(arch, seed=0)
    pG, pD = acgan.build(replace(arch, n_classes=4), seed=0)
    source = [2, 0, 1]
    g = transfer_weights(G.state_dict(), G.state_dict(), pG.state_dict(), source)
    d = transfer_weights(D.state_dict(), D.state_dict(), pD.state_dict(), source)
    old_g = G.state_dict()
    assert torch.equal(g["modulation.0.gamma.weight"], old_g["modulation.0.gamma.weight"][source])
    latent = arch.latent_dim
    assert torch.equal(g["net.0.weight"][latent:], old_g["net.0.weight"][latent:][source])
    assert torch.equal(g["net.0.weight"][:latent], old_g["net.0.weight"][:latent])
    assert torch.equal(d["class_head.weight"], D.state_dict()["class_head.weight"][source])
    assert torch.equal(d["adv_head.weight"], D.state_dict()["adv_head.weight"])
