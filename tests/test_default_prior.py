"""`train` on a user's own dataset starts from the shipped public prior (found through locations.py), with
DiffAugment and the fine-tuning length; `--from-scratch` opts out; phantom datasets keep the old defaults."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from vu_rows import vu_row

from synthvu_core import locations
from synthvu_core.cli import main
from synthvu_core.data.dataset import SplitConfig, VUDataset
from synthvu_core.errors import SelectionError
from synthvu_core.models import training
from synthvu_core.models.augment import DEFAULT_POLICY

torch.set_num_threads(1)


def args(**kw):
    base = dict(arch="default", init_from=None, from_scratch=False, augment=None, steps=None, epochs=None, lr=None)
    return {**base, **kw}


class Card:
    shape = (9, 64, 64)  # the prior's VU shape

    def __init__(self, card):
        self.card = card


def test_own_dataset_defaults_to_the_prior_with_translation_alone_in_a_fine_tune_without_dp():
    a = args()
    filled = training.own_data_defaults(a, Card({}))
    assert a["init_from"] == training.DEFAULT_PRIOR == "acgan-phantom"
    assert (a["steps"], a["lr"], a["augment"]) == (training.FINE_TUNE_STEPS, training.FINE_TUNE_LR, "translation")
    private = args(target_epsilon=8.0)
    training.own_data_defaults(private, Card({}))
    assert private["init_from"] == training.DEFAULT_PRIOR and private["augment"] == DEFAULT_POLICY
    assert f"--init-from {training.DEFAULT_PRIOR}" in filled
    a = args(from_scratch=True)
    training.own_data_defaults(a, Card({}))
    assert a["init_from"] is None and a["steps"] is None and a["lr"] is None and a["augment"] == DEFAULT_POLICY
    a = args(init_from="mine", epochs=3.0, augment="none")
    training.own_data_defaults(a, Card({}))
    assert (a["init_from"], a["steps"], a["augment"]) == ("mine", None, "none")


def test_phantom_datasets_and_other_architectures_keep_their_defaults():
    for a, ds in ((args(), Card({"recipe": {"name": "phantom-demo-120-s0"}})), (args(), None),
                  (args(arch="pgan"), Card({}))):
        if ds is None:  # the demo dataset: no dataset object yet
            a["arch"] = "default"
            ds = Card({"recipe": {"name": "demo"}})
        training.own_data_defaults(a, ds)
        assert a["init_from"] is None and a["steps"] is None and a["augment"] == "none"


def test_a_missing_prior_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(locations, "shipped_models_dir", lambda: tmp_path)
    with pytest.raises(SelectionError, match="--from-scratch"):
        training.own_data_defaults(args(), Card({}))


def own_dataset(tmp_path):
    rng = np.random.default_rng(0)
    rows = [vu_row(f"p{p}", v, crop_mm=64.0) for p in range(4) for v in ("L3/L4", "L4/L5")]
    images = rng.integers(0, 256, (len(rows), 9, 64, 64), dtype=np.uint8)
    ds = VUDataset.from_units(images, pd.DataFrame(rows), split=SplitConfig(0.5, 0.25, 0.25, seed=0))
    ds.save(tmp_path / "own")
    return tmp_path / "own"


def test_train_split_warns_on_the_holdout_that_evaluate_reads(tmp_path, capsys):
    folder = own_dataset(tmp_path)  # built with one holdout patient
    code = main(["train", "--dataset", str(folder), "--scheme", "level", "--out", str(tmp_path / "m"), "--steps", "1",
                 "--quiet", "--device", "cpu", "--checkpoint-every", "0", "--split", "0.25,0.5,0.25"])
    assert code == 0
    out = capsys.readouterr().out  # the run's own split holds 2 holdout patients, but evaluate reads the built one
    assert "fewer than 2 holdout patients for L3/L4 (1), L4/L5 (1)" in out and "`data build --split`" in out


@pytest.mark.parametrize("scratch", [False, True])
def test_train_cli_on_own_data_records_the_prior_it_started_from(tmp_path, capsys, scratch):
    folder = own_dataset(tmp_path)
    flags = ["--from-scratch"] if scratch else []
    code = main(["train", "--dataset", str(folder), "--scheme", "level", "--out", str(tmp_path / "m"), "--steps", "1",
                 "--quiet", "--device", "cpu", "--checkpoint-every", "0", *flags])
    assert code == 0
    out = capsys.readouterr().out
    assert "fewer than 5 training patients for L3/L4 (2), L4/L5 (2)" in out  # 4 patients, half of them train
    assert "fewer than 2 holdout patients for L3/L4 (1), L4/L5 (1)" in out  # and one in the holdout
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    tr = card["training"]
    assert tr["augment"] == (DEFAULT_POLICY if scratch else "translation")
    if scratch:
        assert tr["init_from"] is None and "--from-scratch" in tr["command"]
        return
    assert "starting from acgan-phantom" in out
    assert tr["init_from"]["name"] == "acgan-phantom" and tr["init_from"]["classes"] == {"L3/L4": "L", "L4/L5": "L"}
    assert "--init-from acgan-phantom" in tr["command"]
    assert str(locations.shipped_models_dir()) not in tr["command"]  # a name, not a machine path


def test_a_dataset_of_another_vu_shape_trains_from_scratch():
    class Shaped(Card):
        shape = (1, 32, 32)

    a = args()
    filled = training.own_data_defaults(a, Shaped({}))
    assert a["init_from"] is None and a["steps"] is None and a["augment"] == DEFAULT_POLICY
    assert any(f.startswith("from scratch") for f in filled)
