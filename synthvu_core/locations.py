"""Where the dashboard and the shipped generators live, in a checkout or in an installed package.

In a checkout they sit beside the package (``app.py``, ``app_pages/``, ``dashboard/``, ``.streamlit/``,
``models/``). ``pip install .`` places the same files in the ``synthvu_app`` package directory
(see ``pyproject.toml``). Standard library only: the CLI's ``--help`` imports this module.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

APP_SCRIPT = "app.py"
MODELS_DIR = "models"
CONFIG_FILE = Path(".streamlit") / "config.toml"
APP_PACKAGE = "synthvu_app"


def _checkout_root() -> Path | None:
    root = Path(__file__).resolve().parents[1]
    return root if (root / APP_SCRIPT).is_file() and (root / "app_pages").is_dir() else None


def _installed_root() -> Path | None:
    try:
        spec = importlib.util.find_spec(APP_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        if (Path(loc) / APP_SCRIPT).is_file():
            return Path(loc)
    return None


def app_root() -> Path | None:
    """The folder holding ``app.py`` (the checkout first, then the installed ``synthvu_app``), or None."""
    return _checkout_root() or _installed_root()


def app_script() -> Path | None:
    """Path of the dashboard's ``app.py``, or None where neither a checkout nor an install has it."""
    root = app_root()
    return None if root is None else root / APP_SCRIPT


def shipped_models_dir() -> Path:
    """The shipped ``models/`` folder (may not exist, e.g. in a build without models)."""
    root = app_root()
    return (root if root is not None else Path(__file__).resolve().parents[1]) / MODELS_DIR


def streamlit_flags(config: Path) -> list[str]:
    """``--section.option value`` flags of a Streamlit ``config.toml`` (so the app's settings hold from any folder).

    Args:
        config: the TOML file; a missing file gives no flags.
    """
    import tomllib

    if not config.is_file():
        return []
    with open(config, "rb") as f:
        data = tomllib.load(f)
    flags: list[str] = []
    for section, options in data.items():
        if not isinstance(options, dict):
            continue
        for key, value in options.items():
            if isinstance(value, dict | list):
                continue
            text = str(value).lower() if isinstance(value, bool) else str(value)
            flags += [f"--{section}.{key}", text]
    return flags
