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


def _largest_shift(translate: float | None, seeds: int = 60) -> int:
    """The largest row or column shift of one bright pixel of a 64 x 64 VU over ``seeds`` draws."""
    x = torch.full((1, 1, 64, 64), -1.0)
    x[0, 0, 32, 32] = 1.0
    extra = {} if translate is None else {"translate": translate}
    shifts = []
    for s in range(seeds):
        m = aug.augment(x, ("translation",), torch.Generator().manual_seed(s), **extra)
        i, j = (int(v) for v in torch.nonzero(m[0, 0] == 1.0)[0])
        shifts.append(max(abs(i - 32), abs(j - 32)))
    return max(shifts)


def test_translate_sets_the_largest_shift_of_the_translation():
    assert _largest_shift(None) == 8  # DiffAugment's 1/8 of 64 pixels
    assert _largest_shift(0.0625) == 4
    assert _largest_shift(0.1875) == 12


def test_translate_is_checked_and_recorded(tmp_path):
    import json

    for bad in (0.0, 0.6, float("nan")):
        with pytest.raises(SelectionError, match="--translate must be"):
            train(tiny_dataset(), tmp_path / "x", small(steps=1, augment="translation", translate=bad), progress=False)
    with pytest.raises(SelectionError, match="give a policy with translation"):
        train(tiny_dataset(), tmp_path / "y", small(steps=1, augment="color", translate=0.0625), progress=False)
    out = train(tiny_dataset(), tmp_path / "a", small(steps=1, augment="translation", translate=0.0625), progress=False)
    card = json.loads((out / "card.json").read_text())["training"]
    assert card["augment"] == "translation" and card["translate"] == 0.0625
    trainer = Trainer(tiny_dataset(), tmp_path / "b", small(steps=1, augment="translation", translate=0.0625))
    assert trainer._identity()["translate"] == 0.0625  # a resume with another shift is refused
    assert "translate" not in Trainer(tiny_dataset(), tmp_path / "c", small(steps=1, augment="translation"))._identity()
    plain = train(tiny_dataset(), tmp_path / "d", small(steps=1, augment="color"), progress=False)
    assert "translate" not in json.loads((plain / "card.json").read_text())["training"]  # no translation, no size
    with pytest.raises(SelectionError, match="less than half a pixel"):
        Trainer(tiny_dataset(), tmp_path / "e", small(steps=1, augment="translation", translate=0.001))
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("setting", ["plain", "private", "ada"])
def test_the_trainer_shifts_by_its_translate(monkeypatch, tmp_path, setting):
    asked = []
    original = aug.augment

    def spy(x, policy, generator, rows=None, translate=aug.TRANSLATION_RATIO):
        asked.append(translate)
        return original(x, policy, generator, rows, translate)

    monkeypatch.setattr(aug, "augment", spy)
    extra = {"private": {"dp": DPConfig(noise_multiplier=1.0)}, "ada": {"ada_target": 0.6}}.get(setting, {})
    trainer = Trainer(tiny_dataset(), tmp_path / "m", small(steps=1, augment="translation", translate=0.0625, **extra))
    if setting == "ada":
        trainer.ada[0] = 1.0  # every VU augmented
    trainer.step()
    assert len(asked) >= (3 if setting == "private" else 2) and set(asked) == {0.0625}


def test_policy_parsing():
    assert aug.parse_policy("none") == ()
    assert aug.parse_policy("cutout,color") == ("color", "cutout")
    with pytest.raises(SelectionError, match="unknown operation"):
        aug.parse_policy("flip")


@pytest.mark.parametrize("private", [False, True])
def test_discriminator_sees_augmented_real_and_generated_vus(monkeypatch, tmp_path, private):
    seen = []
    original = aug.augment

    def spy(x, policy, generator, rows=None, translate=aug.TRANSLATION_RATIO):
        seen.append((x.shape[0], x.requires_grad))
        return original(x, policy, generator, rows, translate)

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
