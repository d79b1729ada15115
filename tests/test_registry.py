"""Registry: listing, loading, and refusing foreign, pickled, mis-shaped or missing checkpoints."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file
from vu_rows import vu_row

from synthvu_core.data.dataset import SplitConfig, VUDataset
from synthvu_core.errors import CheckpointError
from synthvu_core.models import registry
from synthvu_core.models.training import ArchOverrides, TrainConfig, train

torch.set_num_threads(1)
VUS = ("T12/L1", "L1/L2", "L4/L5")


def tiny_dataset(seed=0) -> VUDataset:
    rng = np.random.default_rng(seed)
    rows = [vu_row(f"p{p}", v) for p in range(4) for v in VUS]
    imgs = rng.integers(0, 256, (len(rows), 1, 32, 32), dtype=np.uint8)
    return VUDataset.from_units(imgs, pd.DataFrame(rows), split=SplitConfig(0.5, 0.25, 0.25, seed=0))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    ds = tiny_dataset()
    cfg = TrainConfig(
        overrides=ArchOverrides(width=4, d_width=4),
        batch_size=4,
        steps=1,
        checkpoint_every=0,
        montage_every=0,
        device="cpu",
        name="tiny",
    )
    return train(ds, tmp_path_factory.mktemp("models") / "tiny", cfg, progress=False), ds


@pytest.fixture
def copy(trained, tmp_path):
    dst = tmp_path / "g"
    shutil.copytree(trained[0], dst)
    return dst


def test_load_generator_and_discriminator(trained):
    folder, ds = trained
    gen = registry.load_generator(folder)
    assert not gen.training and all(p.dtype == torch.float32 for p in gen.parameters())  # fp16 on disk
    assert gen.card["dataset"]["fingerprint"] == ds.fingerprint
    disc = registry.load_discriminator(folder)
    adv, cls = disc(gen(torch.zeros(2, 100), torch.tensor([0, 1])))
    assert adv.shape == (2,) and cls.shape == (2, 2)
    assert registry.validate(folder, expected_fingerprint=ds.fingerprint)["name"] == "tiny"


def test_list_generators_over_env_and_extra_dirs(trained, tmp_path, monkeypatch):
    folder, _ = trained
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "card.json").write_text("{not json")
    monkeypatch.setenv("SYNTHVU_MODELS", str(folder.parent))
    infos = {i.name: i for i in registry.list_generators(extra_dirs=[tmp_path])}
    assert "tiny" in infos and "broken" not in infos
    info = infos["tiny"]
    assert info.source == "user" and info.has_discriminator and not info.has_report
    assert registry.resolve("tiny") == info.path
    with pytest.raises(CheckpointError, match="no-such"):
        registry.resolve("no-such")


def test_a_dataset_beside_the_generators_is_skipped_and_named_where_given_as_one(copy, tmp_path):
    root = copy.parent  # the generator "g" and, beside it, the dataset it was trained on: one working folder
    tiny_dataset().save(root / "vus")
    (root / "odd").mkdir()
    (root / "odd" / "card.json").write_text("{}")  # not a dataset: still broken
    found, broken = registry.scan_generators([root])
    assert [i.path for i in found if i.path.parent == root] == [copy]
    assert [b.path.name for b in broken if b.path.parent == root] == ["odd"]
    _, broken = registry.scan_generators([root / "vus"])  # the dataset given as the generator root
    assert [b.why for b in broken] == ["a VU dataset (written by `data build`), not a generator folder"]
    with pytest.raises(CheckpointError, match=r"vus: a VU dataset \(written by `data build`\), not a generator"):
        registry.load_card(root / "vus")
    with pytest.raises(CheckpointError, match="card lacks key 'name'"):
        registry.load_card(root / "odd")
    for text in ("5", "null", "[1]", "[" * 100_000 + "]" * 100_000):  # not an object, or nested too deeply
        (root / "odd" / "card.json").write_text(text)
        found, broken = registry.scan_generators([root])
        assert [b.path.name for b in broken if b.path.parent == root] == ["odd"] and len(found) >= 1
        with pytest.raises(CheckpointError):
            registry.load_card(root / "odd")
    (root / "vus" / "card.json").write_text("[" * 100_000 + "]" * 100_000)  # a dataset folder with a broken card
    assert [b.path.name for b in registry.scan_generators([root])[1] if b.path.parent == root] == ["odd", "vus"]


def test_missing_discriminator_is_none(copy):
    (copy / "discriminator.safetensors").unlink()
    assert registry.load_discriminator(copy) is None


def test_refuses_missing_card(copy):
    (copy / "card.json").unlink()
    with pytest.raises(CheckpointError, match="card.json"):
        registry.load_generator(copy)


def test_refuses_invalid_card(copy):
    card = json.loads((copy / "card.json").read_text())
    del card["classes"]
    (copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="classes"):
        registry.load_card(copy)


def test_refuses_card_of_another_dataset(copy):
    other = tiny_dataset(seed=1)
    with pytest.raises(CheckpointError, match=other.fingerprint):
        registry.validate(copy, expected_fingerprint=other.fingerprint)
    with pytest.raises(CheckpointError, match="not on the expected dataset"):
        registry.load_generator(copy, expected_fingerprint=other.fingerprint)


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_refuses_foreign_pickle(copy, capsys):
    state = load_file(str(copy / "generator.safetensors"))
    (copy / "generator.safetensors").unlink()
    with open(copy / "generator.pt", "wb") as f:
        pickle.dump({"state": state, "x": Payload()}, f)
    with pytest.raises(CheckpointError, match=r"generator\.pt"):
        registry.load_generator(copy)
    # the same pickle under the safetensors name
    shutil.move(copy / "generator.pt", copy / "generator.safetensors")
    with pytest.raises(CheckpointError, match=r"generator\.safetensors.*pickle"):
        registry.load_generator(copy)
    assert "must never run" not in capsys.readouterr().out


def test_refuses_corrupt_safetensors(copy):
    (copy / "discriminator.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{bad json}      ")
    with pytest.raises(CheckpointError, match="discriminator.safetensors"):
        registry.validate(copy)


def test_refuses_wrong_shapes_and_missing_keys(copy):
    state = load_file(str(copy / "generator.safetensors"))
    bad = dict(state)
    bad["net.0.weight"] = torch.zeros(3, 3)
    save_file(bad, str(copy / "generator.safetensors"))
    with pytest.raises(CheckpointError, match="net.0.weight.*shape"):
        registry.load_generator(copy)
    missing = {k: v for k, v in state.items() if k != "net.0.weight"}
    save_file(missing, str(copy / "generator.safetensors"))
    with pytest.raises(CheckpointError, match="missing net.0.weight"):
        registry.load_generator(copy)
