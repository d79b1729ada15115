"""Packaging and deployment: the wheel's contents, ``serve``'s command line, and (slow) ``pip install .``
into a fresh virtual environment, then ``synthvu --help`` and ``synthvu serve`` with the container's
settings (Dockerfile ENV and CMD) answering on Streamlit's health endpoint.

The fresh environment is created with ``--system-site-packages`` so that torch and the other
dependencies come from the running interpreter instead of a download; the install itself runs with
``--no-build-isolation`` (setuptools from the running interpreter) so that no network is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_ANYWHERE = shutil.ignore_patterns(
    ".git", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "secrets.toml"
)
SKIP_AT_ROOT = {"build", ".venv", "data", "runs", "out"}  # build outputs and local data of a checkout


def _skip_copy(folder: str, names: list[str]) -> set[str]:
    skip = set(SKIP_ANYWHERE(folder, names))
    return skip | (SKIP_AT_ROOT & set(names) if Path(folder) == ROOT else set())


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_python_package_of_the_library_is_installed() -> None:
    from setuptools import find_packages

    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = {p for p in find_packages(str(ROOT)) if p.startswith("synthvu_core")}
    assert found <= listed, f"pyproject.toml does not install {sorted(found - listed)}"
    assert {"synthvu_app", "synthvu_app.app_pages", "synthvu_app.dashboard"} <= listed


def test_console_script_and_dependency_floors() -> None:
    project = _pyproject()["project"]
    assert project["scripts"]["synthvu"] == "synthvu_core.cli:main"
    deps = {d.split(">")[0].split("=")[0].strip(): d for d in project["dependencies"]}
    assert deps["streamlit"] == "streamlit>=1.52"  # download_button(data=callable), width="stretch"
    assert not deps["torch"].startswith("torch=="), "a pinned torch would pull the CUDA build off the project machines"
    uses_monai = any(
        re.search(r"^\s*(import|from) monai\b", f.read_text(), re.M) for f in (ROOT / "synthvu_core").rglob("*.py")
    )
    assert ("monai" in deps) == uses_monai, "monai is declared exactly when the package imports it"


def test_serve_passes_the_app_settings_and_public_mode(tmp_path: Path) -> None:
    from synthvu_core.cli import serve_command

    args = argparse.Namespace(port=8600, address="127.0.0.1", public=True, secrets=None)
    cmd, env = serve_command(args)
    assert cmd[3] == "run" and Path(cmd[4]).name == "app.py" and Path(cmd[4]).is_file()
    flags = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert flags["--server.port"] == "8600" and flags["--server.address"] == "127.0.0.1"
    assert flags["--browser.gatherUsageStats"] == "false"  # from .streamlit/config.toml
    assert flags["--client.showErrorDetails"] == "none"
    assert env["SYNTHVU_PUBLIC"] == "1"

    from synthvu_core.errors import SynthVUError

    with pytest.raises(SynthVUError, match="secrets file not found"):
        serve_command(argparse.Namespace(port=8600, address=None, public=False, secrets=str(tmp_path / "none.toml")))


def dockerfile() -> tuple[dict[str, str], list[str], str]:
    """(ENV settings, CMD, full text) of the Dockerfile."""
    text = (ROOT / "Dockerfile").read_text()
    joined = text.replace("\\\n", " ")
    env: dict[str, str] = {}
    cmd: list[str] = []
    for line in joined.splitlines():
        if line.startswith("ENV "):
            for pair in line[4:].split():
                key, _, value = pair.partition("=")
                env[key] = value
        if line.startswith("CMD "):
            cmd = json.loads(line[4:])
    return env, cmd, text


def test_dockerfile_installs_cpu_torch_runs_public_and_checks_health() -> None:
    env, cmd, text = dockerfile()
    assert "FROM python:3.11-slim" in text
    assert "--index-url https://download.pytorch.org/whl/cpu" in text
    assert "RUN pip install ." in text and "demo_dataset()" in text
    assert env["SYNTHVU_PUBLIC"] == "1"
    assert "HEALTHCHECK" in text and "/_stcore/health" in text
    assert cmd[:3] == ["synthvu", "serve", "--public"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str, proc: subprocess.Popen, log: Path, seconds: float = 120.0) -> int:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"synthvu serve exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"no answer from {url} within {seconds:.0f} s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with ``pip install .`` of a copy of the checkout; returns its bin folder."""
    base = tmp_path_factory.mktemp("install")
    src, venv = base / "src", base / "venv"
    shutil.copytree(ROOT, src, ignore=_skip_copy)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-build-isolation", str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    shutil.rmtree(src)  # nothing may still point into the copy
    return venv / "bin"


def _clean_env(tmp: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SYNTHVU_MODELS", "SYNTHVU_PUBLIC")}
    env.update(extra or {})
    env["SYNTHVU_CACHE"] = str(tmp / "cache")
    env["HOME"] = str(tmp)
    return env


@pytest.mark.slow
def test_installed_package_has_command_app_and_shipped_models(installed: Path, tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    helped = subprocess.run(
        [str(installed / "synthvu"), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert helped.returncode == 0 and "serve" in helped.stdout and "usage: synthvu" in helped.stdout
    listed = subprocess.run(
        [str(installed / "synthvu"), "models", "list", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    models = json.loads(listed.stdout)
    shipped = sorted(p.name for p in (ROOT / "models").iterdir() if (p / "card.json").is_file())
    assert sorted(Path(m["path"]).name for m in models if m["source"] == "shipped") == shipped
    assert all(str(installed.parent) in m["path"] for m in models)  # the installed copy, not the checkout
    assert not any(m["has_discriminator"] for m in models)  # a discriminator is never packaged


@pytest.mark.slow
def test_installed_serve_answers_health_with_the_container_settings(installed: Path, tmp_path: Path) -> None:
    image_env, cmd, _ = dockerfile()
    image_env.pop("SYNTHVU_CACHE", None)
    port = _free_port()
    args = [str(installed / cmd[0]), *cmd[1:]]
    args[args.index("--port") + 1] = str(port)
    args[args.index("--address") + 1] = "127.0.0.1"  # the image listens on 0.0.0.0 inside its own network
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            args,
            cwd=tmp_path,
            env=_clean_env(tmp_path, image_env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert _healthy(f"http://127.0.0.1:{port}/_stcore/health", proc, log) == 200
        assert "site-packages/synthvu_app/app.py" in _streamlit_command(proc.pid)
        _page_renders(f"http://127.0.0.1:{port}/overview")
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def _page_renders(url: str) -> None:
    """The installed app draws a page without an exception (where Chromium and Playwright are present)."""
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        return
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_text("Public mode: aggregate numbers").first.wait_for(timeout=120_000)
            page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=120_000)
            assert page.locator('[data-testid="stException"]').count() == 0
            assert page.get_by_role("heading", name="synthvu").count() >= 1
        finally:
            browser.close()


def _streamlit_command(parent: int) -> str:
    """Command line of ``serve``'s streamlit child (Linux /proc)."""
    for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        return Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""
