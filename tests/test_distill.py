"""Few-step students of the shipped diffusion generator (:mod:`synthvu_core.models.distill`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from synthvu_core.errors import SelectionError
from synthvu_core.models.distill import DistillConfig, DistillTrainer, distill, teacher_pairs
from synthvu_core.models.registry import load_card, load_generator, resolve

TEACHER = resolve("diffusion-phantom")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHVU_CACHE", str(tmp_path / "cache"))


def _tiny(**kw) -> DistillConfig:
    base = {"student_steps": 1, "pairs": 32, "steps": 3, "batch_size": 8, "held_out": 16, "checkpoint_every": 0}
    return DistillConfig(**{**base, **kw})


def test_the_student_is_a_generator_with_its_teachers_privacy(tmp_path: Path) -> None:
    out = distill(TEACHER, tmp_path / "student", _tiny(), progress=False)
    card, teacher = load_card(out), load_card(TEACHER)
    assert card["architecture"]["sampling_steps"] == 1 and card["architecture"]["guidance"] == 1.0
    assert card["training"]["distilled_from"]["name"] == teacher["name"]
    assert card["dp"] == teacher["dp"] and card["privacy_ledger"] == teacher["privacy_ledger"]  # no run on data
    assert card["dataset"]["fingerprint"] == teacher["dataset"]["fingerprint"]
    err = card["training"]["held_out_latent_mse"]
    assert set(err) == {"student", "teacher_at_k_steps", "target_var"} and err["target_var"] > 0
    gen = load_generator(out)
    assert (gen.sampling_steps, gen.guidance) == (1, 1.0)
    with torch.no_grad():
        imgs = gen(torch.randn(4, gen.config.latent_dim), torch.tensor([0, 1, 2, 0]))
    assert imgs.shape == (4, 9, 64, 64) and imgs.abs().max() <= 1.0
    # the decoder is the teacher's, unchanged: only the UNet is new
    t = load_generator(TEACHER).state_dict()
    s = gen.state_dict()
    assert all(torch.equal(s[k], t[k]) for k in s if not k.startswith("unet."))
    assert any(not torch.equal(s[k], t[k]) for k in s if k.startswith("unet."))


def test_training_brings_the_student_closer_to_its_teacher() -> None:
    trainer = DistillTrainer(TEACHER, Path("unused"), _tiny(student_steps=1, pairs=32, batch_size=32, lr=3e-4))
    z, y, x = trainer._pairs()

    def error() -> float:
        with torch.no_grad():
            return float(((trainer.student.latents(z, y) - x) ** 2).mean())

    before = error()
    for _ in range(12):
        trainer.step()
    assert error() < 0.8 * before


def test_pairs_are_the_teachers_own_samples() -> None:
    teacher = load_generator(TEACHER)
    z, y, x = teacher_pairs(teacher, 6, seed=3)
    with torch.no_grad():
        assert torch.allclose(teacher.latents(z, y), x)
    z2, y2, _ = teacher_pairs(teacher, 6, seed=3)
    assert torch.equal(z, z2) and torch.equal(y, y2)


def test_pairs_are_computed_once_per_teacher_and_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    import synthvu_core.models.distill as d

    teacher = load_generator(TEACHER)
    first = d.cached_pairs(TEACHER, teacher, 8, seed=5)
    monkeypatch.setattr(d, "teacher_pairs", lambda *a, **k: pytest.fail("the cached pairs were not used"))
    again = d.cached_pairs(TEACHER, teacher, 8, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    with pytest.raises(pytest.fail.Exception):  # another seed is another entry
        d.cached_pairs(TEACHER, teacher, 8, seed=6)


def test_a_resumed_run_continues_the_same_run(tmp_path: Path) -> None:
    whole = distill(TEACHER, tmp_path / "whole", _tiny(steps=4), progress=False)
    part = DistillTrainer(TEACHER, tmp_path / "part", _tiny(steps=4))
    part.step(), part.step()
    part.save_checkpoint()
    again = distill(TEACHER, tmp_path / "part", _tiny(steps=4, resume=True), progress=False)
    a, b = load_generator(whole).state_dict(), load_generator(again).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_only_a_diffusion_generator_can_be_distilled(tmp_path: Path) -> None:
    with pytest.raises(SelectionError, match="acgan-phantom.*only a 2-D diffusion generator"):
        distill(resolve("acgan-phantom"), tmp_path / "s", _tiny(), progress=False)
    with pytest.raises(SelectionError, match="folder of its own"):
        distill(TEACHER, TEACHER, _tiny(), progress=False)
    with pytest.raises(SelectionError, match="student steps"):
        distill(TEACHER, tmp_path / "s", _tiny(student_steps=0), progress=False)
    assert not (tmp_path / "s").exists()


def test_cli_writes_the_student_and_its_command(tmp_path: Path, capsys) -> None:
    from synthvu_core.cli import main

    out = tmp_path / "cli"
    assert main(["distill", "diffusion-phantom", "--out", str(out), "--student-steps", "2", "--pairs", "16",
                 "--steps", "2", "--batch-size", "4", "--held-out", "8", "--quiet"]) == 0
    card = json.loads((out / "card.json").read_text())
    assert "distill diffusion-phantom" in card["training"]["command"] and "--student-steps 2" in card["training"][
        "command"]
    assert "held-out latent error" in capsys.readouterr().out


def test_a_shared_student_card_holds_no_command_line() -> None:
    from synthvu_core.share import public_card

    for name in ("diffusion-phantom-1step", "diffusion-phantom-2step"):
        card = load_card(resolve(name))
        assert "command" in json.dumps(card)  # the local card keeps how it was made
        assert '"command"' not in json.dumps(public_card(card, with_discriminator=None))
