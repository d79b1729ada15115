"""The CLI's words: every option says what it does, and the help of ``evaluate --dataset`` describes the
default the code applies (the card's dataset folder or phantom recipe, never a demo dataset)."""

from __future__ import annotations

import argparse

from synthvu_core.cli import build_parser


def _options(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, (*path, name))
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield path, action


def test_every_option_has_help() -> None:
    bare = [f"{' '.join(p)} {'/'.join(a.option_strings) or a.dest}" for p, a in _options(build_parser()) if not a.help]
    assert bare == [], f"options without help: {bare}"


def test_evaluate_dataset_help_names_the_default_the_code_applies() -> None:
    from synthvu_core.data import build

    (action,) = [a for p, a in _options(build_parser()) if p == ("evaluate",) and "--dataset" in a.option_strings]
    assert "demo" not in action.help, "the default is the card's own dataset, never a demo one"
    assert "card" in action.help and "folder" in action.help and "recipe" in action.help
    assert "Never falls back to the demo" in build.dataset_of_card.__doc__  # what the help describes
