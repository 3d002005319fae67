"""Where the report templates and the JSON Schemas are: in the package, else in the checkout.

The top-level ``templates/`` and ``schemas/`` are the sources of truth; a wheel build copies
them into ``tracec/_data/`` (``setup.py``), so an installed compiler finds them without a
checkout.  A source checkout (editable install, ``PYTHONPATH=compiler``) has no ``_data`` and
uses the top-level directories.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DATA = Path(__file__).resolve().parent / "_data"
CHECKOUT = Path(__file__).resolve().parents[2]


def resource_dir(name: str) -> Path:
    """``tracec/_data/NAME`` if the package ships it, else ``<checkout>/NAME``."""
    packaged = PACKAGE_DATA / name
    return packaged if packaged.is_dir() else CHECKOUT / name
