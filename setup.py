"""Ship the top-level ``templates/`` and ``schemas/`` (the sources of truth) inside the wheel,
as ``tracec/_data/`` (found by ``tracec.resources``).  Everything else is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's directories directly
        for name in ("templates", "schemas"):
            dest = Path(self.build_lib) / "tracec" / "_data" / name
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(ROOT / name, dest)


setup(cmdclass={"build_py": BuildWithData})
