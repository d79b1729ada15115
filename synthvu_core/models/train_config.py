"""The one place a training config is built from options (``train`` on the command line and
:func:`synthvu_core.train` alike), and the functions that train each architecture family."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from synthvu_core.models.architectures import architecture, given_options, refuse_foreign, with_defaults

if TYPE_CHECKING:
    from synthvu_core.data.dataset import VUDataset


@dataclass(frozen=True)
class Trainer:
    """What a family's module provides: fill the own-data recipe's defaults, build the config, train."""

    own_data_defaults: Callable[[dict[str, Any], Any], list[str]]
    config_from_options: Callable[[Mapping[str, Any], str | None], Any]
    train: Callable[..., Any]


def trainer(family: str) -> Trainer:
    """The functions that train a family (torch loads here, not when this module is imported)."""
    if family == "diffusion":
        from synthvu_core.models import diffusion_training as d

        return Trainer(lambda options, dataset: [], d.config_from_options, d.train_diffusion)
    from synthvu_core.models import training as t

    return Trainer(t.own_data_defaults, t.config_from_options, t.train)


def build_config(
    options: Mapping[str, Any], dataset: VUDataset | None = None, command: Callable[[dict[str, Any]], str] | None = None
) -> tuple[Any, list[str], dict[str, Any]]:
    """The validated training config of ``options`` (``train`` argument names), the notes on defaults filled, and
    the options as filled.

    The one place a config is built from options: foreign options are refused, :data:`OPTION_DEFAULTS` and the
    own-data recipe's defaults are filled, then ``command(options)`` (the command line that repeats the run, kept in
    the card) is taken from the filled options.
    """
    a = architecture(str(options.get("arch") or "default"))
    refuse_foreign(a.name, given_options(options))
    filled = with_defaults(options)
    functions = trainer(a.family)
    notes = functions.own_data_defaults(filled, dataset)
    return functions.config_from_options(filled, command(filled) if command else None), notes, filled
