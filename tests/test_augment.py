"""DiffAugment: shapes, differentiability, reproducibility, and that D sees augmented real and generated VUs."""

from __future__ import annotations

import pytest
import torch

from synthvu_core.errors import SelectionError
from synthvu_core.models import augment as aug
from synthvu_core.models.dp import DPConfig
from synthvu_core.models.training import Trainer, train
from tests.test_training import small, tiny_dataset

torch.set_num_threads(1)


def batch(n=6, c=3, h=16, w=16, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("op", aug.OPERATIONS)
def test_each_operation_keeps_the_shape_changes_the_vus_and_passes_gradients(op):
    x = batch().requires_grad_(True)
    y = aug.augment(x, (op,), torch.Generator().manual_seed(1))
    assert y.shape == x.shape
    assert not torch.allclose(y, x)
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_the_same_seed_gives_the_same_transform_and_vus_are_transformed_independently():
    x = batch()
    policy = aug.parse_policy(aug.DEFAULT_POLICY)
    a = aug.augment(x, policy, torch.Generator().manual_seed(3))
    b = aug.augment(x, policy, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # a VU's transform does not depend on the other VUs' contents (needed inside a patient's clipped sum)
    other = x.clone()
    other[1:] = batch(seed=9)[1:]
    c = aug.augment(other, policy, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])


def test_translation_shifts_content_and_fills_with_background():
    x = torch.full((1, 1, 16, 16), -1.0)
    x[0, 0, 6:10, 6:10] = 1.0
    moved = [aug.translation(x, torch.Generator().manual_seed(s)) for s in range(20)]
    assert any(not torch.equal(m, x) for m in moved)
    assert all(int((m == 1.0).sum()) <= 16 and float(m.min()) == -1.0 for m in moved)


def test_policy_parsing():
    assert aug.parse_policy("none") == ()
    assert aug.parse_policy("cutout,color") == ("color", "cutout")
    with pytest.raises(SelectionError, match="unknown operation"):
        aug.parse_policy("flip")


@pytest.mark.parametrize("private", [False, True])
def test_discriminator_sees_augmented_real_and_generated_vus(monkeypatch, tmp_path, private):
    seen = []
    original = aug.augment

    def spy(x, policy, generator, rows=None):
        seen.append((x.shape[0], x.requires_grad))
        return original(x, policy, generator, rows)

    monkeypatch.setattr(aug, "augment", spy)
    dp = DPConfig(noise_multiplier=1.0) if private else None
    trainer = Trainer(tiny_dataset(), tmp_path / "m", small(steps=1, augment="color,translation,cutout", dp=dp))
    trainer.step()
    b = trainer.batch_size
    if private:  # real VUs (their own call, before their per-patient gradients), generated for D, generated for G
        assert len(seen) == 3 and seen[1][0] == b and seen[2] == (b, True)
    else:  # real and generated together for D, then generated for G (with G's graph)
        assert len(seen) == 2 and seen[0][0] > b and seen[1] == (b, True)
    assert trainer.augment_policy == ("color", "translation", "cutout")


def test_augmentation_off_calls_nothing_and_the_card_records_the_policy(monkeypatch, tmp_path):
    called = []
    monkeypatch.setattr(aug, "augment", lambda *a: called.append(1))
    trainer = Trainer(tiny_dataset(), tmp_path / "m", small(steps=1))
    trainer.step()
    assert called == []
    monkeypatch.undo()
    out = train(tiny_dataset(), tmp_path / "a", small(steps=2, augment="translation"), progress=False)
    import json

    assert json.loads((out / "card.json").read_text())["training"]["augment"] == "translation"
