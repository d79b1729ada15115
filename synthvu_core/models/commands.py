"""CLI subcommands of this area (argparse only at import time; heavy imports inside handlers)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    pass
