"""Every ``train`` option x every architecture: an option the architecture reads passes the check; one it does not
read is refused in one line (exit 2) before any work, never silently ignored."""

from __future__ import annotations

import argparse

import pytest

from synthvu_core.cli import build_parser, main
from synthvu_core.errors import SelectionError
from synthvu_core.models import architectures
from synthvu_core.models.architectures import ARCHITECTURES, COMMON_OPTIONS, given_options, refuse_foreign

SKIP = {"help", "dataset", "out", "arch"}  # required or the choice itself


def train_actions() -> list[argparse.Action]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return [a for a in sub.choices["train"]._actions if a.dest not in SKIP]


def flag_of(action: argparse.Action) -> str:
    """The option's long name (the positive one of a ``--x / --no-x`` pair)."""
    return action.option_strings[0 if isinstance(action, argparse.BooleanOptionalAction) else -1]


def argv_of(action: argparse.Action) -> list[str]:
    """The option given with a value the parser accepts and that differs from its default."""
    flag = flag_of(action)
    if action.nargs == 0:
        return [flag]
    if action.choices:
        return [flag, next(str(c) for c in reversed(list(action.choices)) if c != action.default)]
    value = {int: "3", float: "0.5"}.get(action.type, "x")
    return [flag, value]


PAIRS = [(a.dest, arch) for a in train_actions() for arch in ARCHITECTURES]


def test_every_train_option_is_declared_by_some_architecture():
    declared = set(COMMON_OPTIONS).union(*(a.options for a in ARCHITECTURES.values()))
    assert {a.dest for a in train_actions()} <= declared
    assert len(PAIRS) >= 35 * len(ARCHITECTURES)  # 39 options today


@pytest.mark.parametrize("dest,arch", PAIRS)
def test_option_x_architecture(dest, arch, capsys, tmp_path):
    action = next(a for a in train_actions() if a.dest == dest)
    argv = ["train", "--dataset", str(tmp_path / "absent"), "--out", str(tmp_path / "m"), "--arch", arch,
            *argv_of(action)]
    args = build_parser().parse_args(argv)
    assert dest in given_options(vars(args))  # the option counts as given
    if ARCHITECTURES[arch].reads(dest):
        refuse_foreign(arch, given_options(vars(args)))  # passes the check
        return
    with pytest.raises(SelectionError, match=f"^{flag_of(action)} applies to .* not to --arch {arch}"):
        refuse_foreign(arch, given_options(vars(args)))
    assert main(argv) == 2  # refused before the (absent) dataset is read
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag_of(action) in err and f"--arch {arch}" in err
    assert not (tmp_path / "m").exists()


def test_the_dp_options_are_refused_for_diffusion_with_the_reason():
    for option in architectures.DP_OPTIONS:  # the declaration itself: DP is the AC-GAN's only
        with pytest.raises(SelectionError, match="differential privacy is not implemented"):
            refuse_foreign("diffusion", [option])
    for option in architectures.DIFFUSION_OPTIONS:
        for arch in ("default", "pgan"):
            with pytest.raises(SelectionError, match="applies to latent diffusion only"):
                refuse_foreign(arch, [option])
    with pytest.raises(SelectionError, match="--clip-norm applies to the AC-GAN only .*differential privacy"):
        refuse_foreign("diffusion", ["clip_norm"])
    with pytest.raises(SelectionError, match="--guidance applies to latent diffusion only"):
        refuse_foreign("pgan", ["guidance"])
    with pytest.raises(SelectionError, match=r"--init-from applies to the AC-GAN only \(--arch default, pgan\), not "
                                             r"to --arch diffusion$"):  # no word on DP where DP is not the reason
        refuse_foreign("diffusion", ["init_from"])


def test_an_unknown_architecture_names_the_known_ones():
    with pytest.raises(SelectionError, match="default, pgan, diffusion"):
        architectures.architecture("vae")
