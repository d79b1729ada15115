"""Build hook: the wheel's shipped generators are written by ``synthvu_core.share.release_models`` (the one
whitelist of what may leave), never copied as they lie in ``models/``. Everything else is in pyproject.toml."""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPy(build_py):
    """``build_py`` that adds the public copies of the shipped generators and leaves this file out."""

    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if Path(m[2]).resolve() != Path(__file__).resolve()]

    def run(self):
        super().run()
        sys.path.insert(0, str(ROOT))
        from synthvu_core.share import WHEEL_MODELS, release_models

        out = Path(self.build_lib) / WHEEL_MODELS
        if out.exists():
            import shutil

            shutil.rmtree(out)  # a previous build's copies: written afresh from models/
        out.mkdir(parents=True)
        release_models(ROOT / "models", out)


setup(cmdclass={"build_py": BuildPy})
