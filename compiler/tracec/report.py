"""``tracec report``: one self-contained, offline HTML page describing a verified bundle.

The bundle is verified first (signature and every digest, through the
runtime); everything shown comes from the verified bytes.  The page has
inline CSS and inline SVG only: no JavaScript, no fonts, no images, no network
at view time, and a Content-Security-Policy that forbids loading anything.
Trace text is HTML-escaped by Jinja2's autoescaping and never used as a template.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from tracec.errors import ParameterError
from tracec.resources import resource_dir
from tracec.report_view import FILTERS, build_view, parse_documents

TEMPLATE = "report.html.j2"


def templates_dir() -> Path:
    """The report templates: shipped in the package, else ``templates/`` of the checkout."""
    return resource_dir("templates")


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(templates_dir())), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(FILTERS)
    return env


def render_html(view: dict) -> str:
    return environment().get_template(TEMPLATE).render(**view)


def render_report(bundle_dir: Union[str, os.PathLike], out_path: Union[str, os.PathLike], *,
                  public_key: object = None, allow_unsigned: bool = False) -> Path:
    """Verify ``bundle_dir`` and write its report to ``out_path`` (atomically); return the path.

    Raises the runtime's ``BundleVerificationError`` subclasses if the bundle does
    not verify (nothing is written), ``ParameterError`` if ``out_path`` is a directory.
    """
    from tracec_runtime import verify_bundle

    out = Path(out_path)
    if out.is_dir():
        raise ParameterError("out", "report", "a file path (not a directory)", str(out))
    verified = verify_bundle(bundle_dir, public_key=public_key, allow_unsigned=allow_unsigned)
    frontier, artifacts, warnings = parse_documents(verified.files)
    if verified.signer is not None:
        signature = f"signature verified (Ed25519, keyid {verified.signer[:16]}…)"
    else:
        signature = ("signature NOT checked (--allow-unsigned): every file digest was verified, "
                     "but nothing proves who built this bundle")
    view = build_view(verified.manifest, frontier, artifacts,
                      bundle_name=Path(bundle_dir).resolve().name, signature=signature,
                      signed=verified.signer is not None, warnings=warnings,
                      verified_files=len(verified.files))
    html = render_html(view)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(html)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
