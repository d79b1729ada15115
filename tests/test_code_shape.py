"""Shape of the code a newcomer reads: no function of the core or the dashboard over 80 lines without a reason on its
def line, and each file name of a generator, report or dataset folder typed once (in synthvu_core/names.py)."""

from __future__ import annotations

import ast
from pathlib import Path

from synthvu_core import names

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 80
#: images.npy is also the member name inside a sample .npz (another thing of the same name), so it is not listed.
FILE_NAMES = {names.CARD_FILE, names.REPORT_FILE, names.ARRAYS_FILE, names.GENERATOR_FILE, names.DISCRIMINATOR_FILE,
              names.UNITS_FILE}


def python_files(*folders: str) -> list[Path]:
    return [p for d in folders for p in (ROOT / d).rglob("*.py") if "vendor" not in p.parts]


def long_functions_without_reason() -> list[str]:
    out = []
    for path in [*python_files("synthvu_core", "dashboard", "app_pages"), ROOT / "app.py"]:
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= MAX_LINES:
                signature = "\n".join(lines[node.lineno - 1 : node.body[0].lineno - 1])
                if "#" not in signature:
                    size = node.end_lineno - node.lineno + 1
                    out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({size})")
    return out


def file_names_typed() -> list[str]:
    out = []
    for path in [*python_files("synthvu_core", "dashboard", "app_pages"), ROOT / "app.py"]:
        if path == ROOT / "synthvu_core" / "names.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            parts = node.values if isinstance(node, ast.JoinedStr) else [node]
            for part in parts:
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    value = part.value
                    if value in FILE_NAMES or (node is not part and any(value.endswith("/" + n) for n in FILE_NAMES)):
                        out.append(f"{path.relative_to(ROOT)}:{part.lineno} {value!r}")
    return out


def test_no_long_function_without_a_reason():
    assert long_functions_without_reason() == []


def test_each_file_name_is_typed_once():
    assert file_names_typed() == []


def test_no_namespace_crosses_into_the_core():
    """argparse is read only by the CLI wing (``cli.py`` and each area's ``commands.py``)."""
    readers = []
    for path in python_files("synthvu_core"):
        if path.name in ("cli.py", "commands.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names) or \
                    isinstance(node, ast.ImportFrom) and node.module == "argparse":
                readers.append(str(path.relative_to(ROOT)))
    assert readers == []
