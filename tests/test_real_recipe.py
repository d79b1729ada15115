"""Options of `train` for small real datasets: class-balanced real sampling (refused under DP), source conditioning
switched with --[no-]condition-source, a class-loss weight a fine-tune may set; the own-data defaults leave them off."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from synthvu_core.data.dataset import VUDataset
from synthvu_core.errors import SelectionError
from synthvu_core.models import training
from synthvu_core.models.dp import DPConfig
from synthvu_core.models.training import ArchOverrides, Trainer, train
from tests.test_source_conditioning import sourced
from tests.test_training import small, tiny_dataset

torch.set_num_threads(1)


def args(**kw):
    base = dict(arch="default", scheme="level", init_from=None, from_scratch=False, augment=None, steps=None,
                epochs=None, lr=None, balance_classes=None, condition_source=None, target_epsilon=None,
                noise_multiplier=None)
    return {**base, **kw}


def skewed(patients: int = 6) -> VUDataset:
    """A tiny dataset whose first class holds four times as many train VUs as each other class."""
    ds = tiny_dataset(patients=patients)
    units = ds.units.drop(columns=["split"])
    first = units["level"].iloc[0]
    extra = units[units["level"] == first]
    images = np.concatenate([ds.images] + [ds.images[extra.index.to_numpy()]] * 3)
    units = pd.concat([units] + [extra] * 3, ignore_index=True)
    return VUDataset.from_units(images, units, split=ds.split_config())


def test_balanced_sampling_draws_each_class_about_equally(tmp_path):
    ds = skewed()
    for balance, lo, hi in ((False, 0.3, 1.0), (True, 0.0, 0.3)):
        config = small(steps=1, batch_size=64, balance_classes=balance, scheme="level")
        trainer = Trainer(ds, tmp_path / str(balance), config)
        k = len(trainer.classes)
        counts = np.bincount(trainer.labels.numpy() % k, minlength=k)
        assert counts.max() >= 2 * counts.min()  # the train split is skewed
        drawn = np.concatenate([trainer.labels[trainer._real_batch()[0]].numpy() % k for _ in range(20)])
        share = np.bincount(drawn, minlength=k) / len(drawn)
        excess = share.max() - share.min()
        assert lo <= excess <= hi, (balance, share)
        assert np.allclose(trainer.prior.numpy(), 1 / k) == balance  # generated classes: uniform when balanced


def test_balanced_sources_keep_their_proportion_within_each_class(tmp_path):
    ds = sourced(skewed())
    trainer = Trainer(ds, tmp_path / "b", small(steps=1, balance_classes=True, condition_source=True, scheme="level"))
    k = len(trainer.classes)
    prior = trainer.prior.numpy().reshape(-1, k)
    assert np.allclose(prior.sum(0), 1 / k)
    assert np.allclose(prior.T / prior.sum(0)[:, None], np.asarray(trainer.arch.source_prior))
    trainer.step()


def test_balancing_is_refused_under_dp(tmp_path):
    with pytest.raises(SelectionError, match="balance-classes cannot be private"):
        Trainer(tiny_dataset(), tmp_path / "dp", small(steps=1, balance_classes=True,
                                                         dp=DPConfig(noise_multiplier=1.0)))


def test_the_class_loss_weight_may_be_set_on_a_fine_tune(tmp_path):
    ds = tiny_dataset()
    pre = train(ds, tmp_path / "pre", small(steps=1), progress=False)
    over = ArchOverrides(width=4, d_width=4, aux_weight=3.0)
    trainer = Trainer(ds, tmp_path / "ft", small(steps=1, init_from=str(pre), overrides=over))
    assert trainer.arch.aux_weight == 3.0
    with pytest.raises(SelectionError, match="aux-weight"):
        small(overrides=ArchOverrides(aux_weight=-1.0)).validate()


def test_own_data_defaults_leave_balancing_and_sources_off():
    """Both are opt-in: on the real lumbar MRI they did not lift TSTR significantly (docs/real-data.md)."""
    a = args()
    filled = training.own_data_defaults(a, sourced(tiny_dataset(patients=6)))
    assert not a["balance_classes"] and not a["condition_source"]
    assert not any("balance" in f or "condition-source" in f for f in filled)
