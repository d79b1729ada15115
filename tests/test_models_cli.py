"""CLI: train, sample, models list / show; user errors exit 2 with one line; --help imports no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from vu_rows import vu_row

from synthvu_core.cli import main
from synthvu_core.data.dataset import SplitConfig, VUDataset

ROOT = Path(__file__).resolve().parents[1]
VUS = ("T12/L1", "L1/L2", "L4/L5")


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    rows = [vu_row(f"p{p}", v) for p in range(4) for v in VUS]
    imgs = rng.integers(0, 256, (len(rows), 1, 32, 32), dtype=np.uint8)
    ds = VUDataset.from_units(imgs, pd.DataFrame(rows), split=SplitConfig(0.5, 0.25, 0.25, seed=0))
    return ds.save(tmp_path_factory.mktemp("data") / "ds")


def test_train_sample_list_show(dataset_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "models" / "cli-gen"
    rc = main(
        [
            "train",
            "--dataset",
            str(dataset_dir),
            "--out",
            str(out),
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--width",
            "4",
            "--scheme",
            "level",
            "--device",
            "cpu",
            "--checkpoint-every",
            "1",
            "--noise-multiplier",
            "1.0",
            "--quiet",
            "--name",
            "cli-gen",
        ]
    )
    assert rc == 0
    assert "patient-level DP: epsilon" in capsys.readouterr().out  # the unit is said where the run ends
    card = json.loads((out / "card.json").read_text())
    assert (
        card["scheme"] == "level" and card["dp"]["epsilon"] > 0 and "--noise-multiplier" in card["training"]["command"]
    )
    assert len(list((out / "training").glob("montage_*.png"))) >= 2

    monkeypatch.setenv("SYNTHVU_MODELS", str(out.parent))
    assert (
        main(["sample", "cli-gen", "--position", "L4/L5", "--n", "5", "--seed", "1", "--out", str(tmp_path / "s.npz")])
        == 0
    )
    npz = np.load(tmp_path / "s.npz")
    assert npz["images"].shape == (5, 1, 32, 32) and set(npz["positions"]) == {"L4/L5"}

    capsys.readouterr()
    assert main(["models", "list", "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed["cli-gen"]["scheme"] == "level" and listed["cli-gen"]["epsilon"] > 0
    assert main(["models", "show", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "cli-gen"
    assert main(["models", "show", "cli-gen"]) == 0
    shown = capsys.readouterr().out
    assert "patient-level DP: epsilon" in shown and "over 2 patients" in shown
    assert "composed ε =" in shown and "recorded on its training data" in shown  # the ledger's bound
    assert (dataset_dir / "privacy_ledger.json").is_file()  # kept with the dataset


def tiny_train(dataset_dir: Path, out: Path, *extra: str) -> int:
    """``train`` for one step of a width-4 generator on CPU, with ``extra`` options; its exit code."""
    tiny = ["--steps", "1", "--batch-size", "2", "--width", "4", "--d-width", "4", "--device", "cpu", "--quiet"]
    return main(["train", "--dataset", str(dataset_dir), "--out", str(out), *tiny, *extra])


def test_train_on_another_split(dataset_dir, tmp_path):
    out = tmp_path / "few"
    assert tiny_train(dataset_dir, out, "--split", "0.25,0.5,0.25", "--split-seed", "3") == 0
    card = json.loads((out / "card.json").read_text())
    assert card["dataset"]["split"] == {"train": 0.25, "holdout": 0.5, "reference": 0.25, "seed": 3, "stratify": True}
    assert card["dataset"]["n_train"] == len(VUS)  # one of four patients
    assert (card["architecture"]["g_cond"], card["architecture"]["aux_fake"]) == ("modulate", False)


def test_train_with_the_study_conditioning(dataset_dir, tmp_path):
    out = tmp_path / "study-cond"
    assert tiny_train(dataset_dir, out, "--conditioning", "input", "--class-loss", "all") == 0
    card = json.loads((out / "card.json").read_text())
    assert (card["architecture"]["g_cond"], card["architecture"]["aux_fake"]) == ("input", True)
    assert "--conditioning input --class-loss all" in card["training"]["command"]
    from synthvu_core.models.registry import load_generator

    assert not hasattr(load_generator(out), "modulation")
    assert main(["train", "--dataset", str(dataset_dir), "--out", str(out), "--split", "0.5,0.5"]) == 2


def test_train_never_writes_over_a_folder_that_is_not_a_generator(dataset_dir, tmp_path, capsys):
    """A dataset or someone's folder given as --out is refused before any work and left as it was; a generator
    folder is trained again, and --force writes anyway."""
    import shutil

    copy = Path(shutil.copytree(dataset_dir, tmp_path / "ds-copy"))
    before = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    assert main(["train", "--dataset", str(dataset_dir), "--out", str(copy), "--steps", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(copy) in err[0] and "is not a generator folder" in err[0] and "--force" in err[0]
    assert {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()} == before
    assert not (copy / "training").exists() and not (tmp_path / ".ds-copy.lock").exists()
    out = tmp_path / "gen"
    assert tiny_train(dataset_dir, out) == 0 and tiny_train(dataset_dir, out) == 0  # its own folder: again
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert tiny_train(dataset_dir, mine) == 2 and (mine / "notes.txt").read_text() == "keep"
    assert tiny_train(dataset_dir, mine, "--force") == 0 and (mine / "card.json").is_file()


def test_user_errors_exit_2(dataset_dir, tmp_path, capsys):
    assert main(["sample", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing" in err[0]
    assert main(["train", "--dataset", str(tmp_path / "none"), "--out", str(tmp_path / "m")]) == 2


@pytest.mark.parametrize(
    "args, match",
    [
        (["--epochs", "0"], "--epochs"),
        (["--checkpoint-every", "-1"], "--checkpoint-every"),
        (["--noise-multiplier", "1", "--delta", "0.6"], "1/N_patients"),
        (["--delta", "1e-6"], "need --target-epsilon"),
    ],
)
def test_bad_training_arguments_exit_2_with_one_line(dataset_dir, tmp_path, capsys, args, match):
    out = tmp_path / "m"
    assert (
        main(
            [
                "train",
                "--dataset",
                str(dataset_dir),
                "--out",
                str(out),
                "--steps",
                "1",
                "--width",
                "4",
                "--quiet",
                *args,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]
    assert not (out / "card.json").exists()


@pytest.mark.parametrize(
    "change, match", [({"card_version": 99}, "card_version 99"), ({"fingerprint": None}, "no fingerprint")]
)
def test_dataset_card_of_unknown_version_or_without_fingerprint_is_refused_at_load(
    dataset_dir, tmp_path, capsys, change, match
):
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(dataset_dir, copy)
    card = json.loads((copy / "card.json").read_text())
    card.update(change)
    card = {k: v for k, v in card.items() if v is not None}
    (copy / "card.json").write_text(json.dumps(card))
    assert main(["train", "--dataset", str(copy), "--out", str(tmp_path / "m"), "--steps", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0] and "card.json" in err[0]


def test_help_imports_no_torch():
    code = (
        "import sys; from synthvu_core.models import commands; import argparse; "
        "p = argparse.ArgumentParser(); commands.register(p.add_subparsers()); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
