"""Packaging and deployment: what the wheel and the images carry (every file checked against the
whitelist of ``synthvu_core/share.py``), ``serve``'s command line, and (slow) the wheel installed into
a fresh virtual environment, then ``synthvu --help``, fine-tuning from the shipped prior, and ``synthvu
serve`` with the container's settings (Dockerfile ENV and CMD) answering on Streamlit's health endpoint.

The wheel is built by the running interpreter's setuptools (``requirements-dev.txt`` asks for one that
builds wheels by itself) with ``--no-build-isolation``, so that no network is needed. The fresh
environment sees the running interpreter's site-packages through a ``.pth`` file (never the base
interpreter's, which may hold anything or nothing), so torch and the other dependencies are not
downloaded again and the installed package is the only synthvu in it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import site
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from synthvu_core.names import CARD_FILE, GENERATOR_FILE

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


def dockerfile(name: str = "Dockerfile") -> tuple[dict[str, str], list[str], str]:
    """(ENV settings of the image's stage, CMD, full text) of a Dockerfile."""
    text = (ROOT / name).read_text()
    env: dict[str, str] = {}
    cmd: list[str] = []
    for line in docker_stages(name)[-1]:
        if line.startswith("ENV "):
            for pair in line[4:].split():
                key, _, value = pair.partition("=")
                env[key] = value
        if line.startswith("CMD "):
            cmd = json.loads(line[4:])
    return env, cmd, text


def docker_stages(name: str = "Dockerfile") -> list[list[str]]:
    """The instructions of a Dockerfile (continuations joined, comments dropped), one list per ``FROM`` stage."""
    joined = (ROOT / name).read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def docker_copies(stage: list[str]) -> list[tuple[str | None, list[str]]]:
    """(``--from`` stage or None, sources) of every COPY or ADD of a stage."""
    out = []
    for line in stage:
        if line.startswith(("COPY ", "ADD ")):
            words = line.split()[1:]
            origin = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
            paths = [w for w in words if not w.startswith("--")]
            out.append((origin, paths[:-1] if not line.startswith("ADD") else ["ADD"]))
    return out


def wheel_build_inputs() -> set[str]:
    """What the wheel is built from: pyproject, its readme, setup.py (whose hook passes models/ through
    synthvu_core/share.py), the package folders, the root modules and the package data."""
    tool = _pyproject()["tool"]["setuptools"]
    dirs = {d for d in tool["package-dir"].values() if d != "."}
    dirs |= {p.split(".")[0] for p in tool["packages"] if p.split(".")[0] not in tool["package-dir"]}
    modules = {p.name for p in ROOT.glob("*.py") if p.name != "setup.py"}
    data = set(tool["package-data"]["synthvu_app"])
    return {"pyproject.toml", "setup.py", _pyproject()["project"]["readme"], "models"} | dirs | modules | data


def test_dockerfile_installs_cpu_torch_runs_public_and_checks_health() -> None:
    env, cmd, text = dockerfile()
    assert "FROM python:3.11-slim" in text
    assert "--index-url https://download.pytorch.org/whl/cpu" in text
    assert "demo_dataset()" in text
    assert env["SYNTHVU_PUBLIC"] == "1"
    assert "HEALTHCHECK" in text and "/_stcore/health" in text
    assert cmd[:3] == ["synthvu", "serve", "--public"]


def test_docker_image_holds_the_wheel_and_nothing_else_of_this_folder() -> None:
    """The image's stage copies only the wheel built in the first stage; the first stage copies only what
    the wheel is built from (never the whole folder), and the wheel is what the whitelist lets leave."""
    wheel_stage, image = docker_stages()
    name = wheel_stage[0].split()[-1]
    assert wheel_stage[0].startswith("FROM ") and " AS " in wheel_stage[0].upper()
    built = [src for origin, srcs in docker_copies(wheel_stage) for src in srcs]
    assert all(origin is None for origin, _ in docker_copies(wheel_stage))
    assert set(built) <= wheel_build_inputs(), sorted(set(built) - wheel_build_inputs())
    assert not {".", "./", "*"} & set(built) and "models" in built
    assert any(line.startswith("RUN pip wheel --no-deps") for line in wheel_stage)
    assert docker_copies(image) == [(name, ["/wheels"])], docker_copies(image)
    assert any(line.startswith("RUN pip install /wheels/synthvu-") for line in image)


def test_space_image_is_built_from_the_wheel_alone() -> None:
    """The Spaces recipe pushes this Dockerfile, the wheel and a card; the image copies the wheel only and
    runs as the main image does."""
    (image,) = docker_stages("deploy/Dockerfile.space")
    assert docker_copies(image) == [(None, ["synthvu-*.whl"])]
    assert dockerfile("deploy/Dockerfile.space")[:2] == dockerfile()[:2]
    recipe = (ROOT / "docs" / "deploy.md").read_text()
    space = recipe[recipe.index("## Hugging Face Spaces") :]
    assert "pip wheel" in space and "deploy/Dockerfile.space" in space
    assert "git push space deploy-space:main" not in space  # never the whole repository


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


SETUPTOOLS_FLOOR = (70, 1)  # builds wheels without the `wheel` package (requirements-dev.txt)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of a copy of the checkout, built as ``pip install .`` builds it; returns its path."""
    import setuptools

    have = tuple(int(p) for p in re.findall(r"\d+", setuptools.__version__)[:2])
    assert have >= SETUPTOOLS_FLOOR, (
        f"setuptools {setuptools.__version__} cannot build the wheel: install requirements-dev.txt "
        f"(setuptools>={'.'.join(map(str, SETUPTOOLS_FLOOR))})"
    )
    base = tmp_path_factory.mktemp("wheel")
    src, out = base / "src", base / "dist"
    shutil.copytree(ROOT, src, ignore=_skip_copy)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index", "--no-build-isolation",
         "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    shutil.rmtree(src)
    (built,) = out.glob("synthvu-*.whl")
    return built


def _site_dirs() -> list[str]:
    """The running interpreter's site-packages folders (a venv's own, never its base interpreter's)."""
    dirs = [*site.getsitepackages(), site.getusersitepackages()] if site.ENABLE_USER_SITE else site.getsitepackages()
    return [d for d in dirs if Path(d).is_dir()]


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed (its dependencies seen through a ``.pth``); returns its bin folder."""
    venv = tmp_path_factory.mktemp("install") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    Path(purelib, "_running_interpreter.pth").write_text("\n".join(_site_dirs()) + "\n")
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
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
    # a discriminator is packaged only for the public prior (synthvu_core.share.PUBLIC_PRIORS)
    assert sorted(Path(m["path"]).name for m in models if m["has_discriminator"]) == ["acgan-phantom"]


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


def _source_names() -> set[str]:
    """Source file names and patient ids that the checkout's cards and reports hold (never to be shipped)."""
    names: set[str] = set()
    for card in (ROOT / "models").glob("*/card.json"):
        sources = (json.loads(card.read_text()).get("dataset") or {}).get("sources")
        if isinstance(sources, list):
            names |= {Path(s).name.split(".")[0] for s in sources}
    return names


@pytest.mark.slow
def test_every_file_of_the_wheel_is_on_the_whitelist(wheel: Path) -> None:
    """Every file in the wheel may leave (synthvu_core/share.py); report arrays are the public ones only;
    cards hold no source file names or command lines; no file names a real source."""
    import zipfile

    from synthvu_core.share import PUBLIC_PRIORS, WHEEL_MODELS, public_array, wheel_file_may_leave

    secret = _source_names()
    assert any(n.startswith("sub-") for n in secret)  # the checkout's real-data generator names its sources
    with zipfile.ZipFile(wheel) as z:
        files = [n for n in z.namelist() if not n.endswith("/")]
        assert [n for n in files if not wheel_file_may_leave(n)] == []
        shipped = {n.split("/")[2] for n in files if n.startswith(WHEEL_MODELS + "/")}
        assert shipped == {p.parent.name for p in (ROOT / "models").glob("*/card.json")}
        discriminators = {n.split("/")[2] for n in files if n.endswith("/discriminator.safetensors")}
        assert discriminators == set(PUBLIC_PRIORS)
        for n in files:
            if n.endswith(".npz"):
                with zipfile.ZipFile(z.open(n)) as arrays:
                    kept = [m.removesuffix(".npy") for m in arrays.namelist()]
                assert kept and all(public_array(k) for k in kept), (n, kept)
            if n.endswith(("card.json", "report.json", "README.md", "share.json", ".csv")):
                text = z.read(n).decode()
                assert not [s for s in secret if s in text], n
                assert "myosegmentum_sub" not in text and '"command"' not in text, n


@pytest.mark.slow
def test_the_checkout_holds_what_the_wheel_leaves_out() -> None:
    """The whitelist has teeth: the checkout's folders hold per-patient arrays and non-DP discriminators."""
    import zipfile

    from synthvu_core.share import public_array, wheel_file_may_leave

    with zipfile.ZipFile(ROOT / "models" / "acgan-spine-mri" / "report" / "arrays.npz") as z:
        assert [m for m in z.namelist() if not public_array(m.removesuffix(".npy"))]
    assert not wheel_file_may_leave("synthvu_app/models/acgan-spine-mri/discriminator.safetensors")
    assert not wheel_file_may_leave("synthvu_app/models/acgan-spine-mri/training/checkpoint/state.safetensors")
    assert not wheel_file_may_leave("synthvu_app/setup.py")


@pytest.fixture(scope="module")
def level_dataset(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny VU dataset of the user's own kind (NIfTI pairs, no phantom recipe in its card), built by the
    installed command from 5 phantom volumes (seed 7, not the prior's cohort)."""
    out = tmp_path_factory.mktemp("level") / "ds"
    env = _clean_env(out.parent)
    for cmd in (["phantom", "--patients", "5", "--seed", "7", "--workers", "1", "--out", str(out.parent / "nifti")],
                ["data", "build", "--images", str(out.parent / "nifti"), "--out", str(out)]):
        done = subprocess.run([str(installed / "synthvu"), *cmd], cwd=out.parent, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    return out


def _train(installed: Path, dataset: Path, tmp_path: Path, *flags: str) -> dict:
    out = tmp_path / "mine"
    done = subprocess.run(
        [str(installed / "synthvu"), "train", "--dataset", str(dataset), "--scheme", "level", "--steps", "2",
         "--out", str(out), "--quiet", *flags],
        cwd=tmp_path, env=_clean_env(tmp_path), capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((out / "card.json").read_text())


def _from_the_shipped_prior(card: dict) -> None:
    from synthvu_core.share import PUBLIC_PRIORS

    start = card["training"]["init_from"]
    assert isinstance(start, dict) and start["name"] == "acgan-phantom", start
    assert start["dataset"] == PUBLIC_PRIORS["acgan-phantom"][0]  # the shipped prior, trained on the phantom


@pytest.mark.slow
def test_installed_train_fine_tunes_from_the_shipped_prior(installed: Path, level_dataset: Path, tmp_path: Path):
    """After installing the wheel, `--init-from acgan-phantom` finds the packaged prior and its discriminator."""
    _from_the_shipped_prior(_train(installed, level_dataset, tmp_path, "--init-from", "acgan-phantom"))


@pytest.mark.slow
def test_installed_train_starts_from_the_prior_by_default(installed: Path, level_dataset: Path, tmp_path: Path):
    """`synthvu train --dataset DIR --scheme level` with no other flag fine-tunes the packaged prior."""
    helped = subprocess.run([str(installed / "synthvu"), "train", "--help"], env=_clean_env(tmp_path),
                            capture_output=True, text=True, check=True)
    if "--from-scratch" not in helped.stdout:
        pytest.skip("the prior as train's default start (with --from-scratch to opt out) is not in this version")
    _from_the_shipped_prior(_train(installed, level_dataset, tmp_path))


def test_fresh_machine_install_is_documented_and_proved_by_ci() -> None:
    """The README documents the CPU-only torch of requirements.txt's pin; requirements-dev brings a setuptools
    that builds the wheel by itself; .ci/run installs into and tests in a venv made from the stock interpreter."""
    pin = next(line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
               if line.startswith("torch=="))
    readme = (ROOT / "README.md").read_text()
    assert f"pip install {pin} --index-url https://download.pytorch.org/whl/cpu" in readme
    dev = (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert f"setuptools>={'.'.join(map(str, SETUPTOOLS_FLOOR))}" in dev
    addopts = _pyproject()["tool"]["pytest"]["ini_options"]["addopts"].split()
    assert "-n" not in addopts or any(line.startswith("pytest-xdist") for line in dev)  # the default -n needs xdist
    build = _pyproject()["build-system"]["requires"]
    assert f"setuptools>={'.'.join(map(str, SETUPTOOLS_FLOOR))}" in build
    ci = (ROOT / ".ci" / "run").read_text()
    venv = re.search(r'"\$PYTHON" -m venv "([^"]+)"', ci)
    assert venv and "--system-site-packages" not in ci
    assert '"$py" -m pip install -q -r requirements-dev.txt' in ci and '"$py" -m pytest -q' in ci
    assert "\npython -m pytest" not in ci  # never the interpreter that happens to be first on PATH


def test_the_wheels_generators_are_written_without_torch_and_never_from_the_builders_runs(tmp_path: Path) -> None:
    """``pip install .`` builds in an isolated environment that has setuptools and numpy only: the build hook
    (``release_models``) writes every shipped generator with torch and Opacus absent. What it writes depends on
    ``models/`` alone: a card of the builder's under ``$SYNTHVU_MODELS`` on the same patients, or the builder's
    own ledger, never reaches a released card. A joint generator keeps its released table and clinical report."""
    mine = tmp_path / "mine" / "builders-private-run"
    mine.mkdir(parents=True)
    card = json.loads((ROOT / "models" / "acgan-phantom" / CARD_FILE).read_text())
    card["name"], card["created"] = "builders-private-run", "2026-01-01T00:00:00+00:00"
    card.pop("privacy_ledger", None)
    (mine / CARD_FILE).write_text(json.dumps(card))
    shutil.copyfile(ROOT / "models" / "acgan-phantom" / GENERATOR_FILE, mine / GENERATOR_FILE)
    code = ("import sys; sys.modules['torch'] = None; sys.modules['opacus'] = None\n"
            "from synthvu_core.share import release_models\n"
            f"release_models({str(ROOT / 'models')!r}, sys.argv[1])\n")
    spine = json.loads((ROOT / "models" / "acgan-spine-mri" / CARD_FILE).read_text())["privacy_ledger"]["entries"][-1]
    later = {"id": "later", "run": "builders-later-run", "created": "2027-01-01T00:00:00+00:00", "dp": False,
             "epsilon": None, "patients": ["p1"], "images": []}
    (tmp_path / "ledger.json").write_text(json.dumps({  # the builder's own ledger holds a later run on those patients
        "keyed_by": "patient", "datasets": [spine["dataset"]], "entries": [{**spine, "patients": ["p1"]}, later]}))
    env = {**os.environ, "SYNTHVU_MODELS": str(tmp_path / "mine"), "SYNTHVU_LEDGER": str(tmp_path / "ledger.json"),
           "PYTHONPATH": str(ROOT)}
    check = "from synthvu_core.models.ledger import composed_text, json; from pathlib import Path; " \
        f"print(composed_text(json.loads(Path({str(ROOT / 'models' / 'acgan-spine-mri' / CARD_FILE)!r}).read_text())))"
    seen = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env, timeout=300)
    assert "1 of them after this card was written" in seen.stdout, seen.stdout + seen.stderr  # outside a release
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    released = {p.parent.name: p.read_text() for p in (tmp_path / "out").glob(f"*/{CARD_FILE}")}
    assert len(released) == len(list((ROOT / "models").glob(f"*/{CARD_FILE}")))
    assert not any("builders-private-run" in text or "builders-later-run" in text for text in released.values())
    joint = tmp_path / "out" / "acgan-joint-phantom"
    assert (joint / "clinical_synthetic.csv").is_file()
    clinical = json.loads((joint / "report" / "clinical.json").read_text())
    assert "privacy" in clinical and "cpu_seconds" not in clinical
