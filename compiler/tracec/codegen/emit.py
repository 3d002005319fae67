"""Render one language's source package from the layout (``tracec.codegen.blob.pack``).

One Jinja template set per language in ``templates/codegen/<lang>/``: the policy
module (loading, SHA-256 check, input checks, acceptor, routing), one macro file
per node kind (``nodes/<kind>.j2``), the example program and ``build.sh``.
A stage whose kind has no node template for the language is refused.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from tracec.codegen.errors import CodegenInputError, UnsupportedStageError

__all__ = ["LANGS", "render", "templates_root"]


@dataclass(frozen=True)
class Lang:
    name: str
    files: tuple       # (template name, output name)


LANGS = {
    "c": Lang("c", (("tracec_policy.h.j2", "tracec_policy.h"), ("tracec_policy.c.j2", "tracec_policy.c"),
                    ("route_example.c.j2", "route_example.c"), ("build.sh.j2", "build.sh"))),
    "python": Lang("python", (("tracec_policy.py.j2", "tracec_policy.py"),
                              ("route_example.py.j2", "route_example.py"),
                              ("build.sh.j2", "build.sh"))),
    "js": Lang("js", (("tracec_policy.js.j2", "tracec_policy.js"),
                      ("route_example.js.j2", "route_example.js"), ("build.sh.j2", "build.sh"))),
    "java": Lang("java", (("TracecPolicy.java.j2", "TracecPolicy.java"),
                          ("RouteExample.java.j2", "RouteExample.java"),
                          ("build.sh.j2", "build.sh"))),
    "go": Lang("go", (("policy.go.j2", "tracecpolicy/policy.go"), ("main.go.j2", "main.go"),
                      ("go.mod.j2", "go.mod"), ("build.sh.j2", "build.sh"))),
}


def templates_root() -> Path:
    """``templates/codegen`` at the repository root (next to ``compiler/``)."""
    import tracec
    return Path(tracec.__file__).resolve().parents[2] / "templates" / "codegen"


def _bytes_literal(s: str, esc) -> str:
    """A double-quoted literal of the UTF-8 bytes of ``s``; ``esc(byte)`` for non-printables."""
    out = []
    for b in s.encode("utf-8"):
        ch = chr(b)
        out.append("\\" + ch if ch in '"\\' else (ch if 0x20 <= b < 0x7f else esc(b)))
    return '"' + "".join(out) + '"'


def _java_literal(s: str) -> str:
    out = []
    for unit in s.encode("utf-16-be").hex(" ", 2).split():
        c = int(unit, 16)
        ch = chr(c)
        out.append("\\" + ch if ch in '"\\' else (ch if 0x20 <= c < 0x7f else f"\\u{c:04x}"))
    return '"' + "".join(out) + '"'


def _env(lang: str):
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(templates_root() / lang)), autoescape=False,
                      undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["cstr"] = lambda s: _bytes_literal(s, lambda b: f"\\{b:03o}")
    env.filters["gostr"] = lambda s: _bytes_literal(s, lambda b: f"\\x{b:02x}")
    env.filters["javastr"] = _java_literal
    env.filters["jsstr"] = lambda s: json.dumps(s, ensure_ascii=True)
    env.filters["pystr"] = lambda s: repr(s)
    env.globals["isfinite"] = math.isfinite
    return env


def render(lang: str, layout: dict) -> dict[str, bytes]:
    """``{relative path: bytes}`` of every source file for ``lang`` (weights not included)."""
    if lang not in LANGS:
        raise CodegenInputError(f"The 'lang' parameter of codegen must be one of "
                                f"{', '.join(sorted(LANGS))}. Got {lang!r} instead.")
    root = templates_root() / lang
    for st in layout["stages"]:
        if not (root / "nodes" / f"{st['kind']}.j2").is_file():
            raise UnsupportedStageError(f"stage {st['index']} (kind {st['kind']!r})",
                                        f"a node kind the {lang} emitter knows "
                                        f"({', '.join(sorted(p.stem for p in (root / 'nodes').glob('*.j2')))})",
                                        st["kind"])
    env = _env(lang)
    out = {}
    for template, name in LANGS[lang].files:
        text = env.get_template(template).render(p=layout, lang=lang)
        out[name] = text.encode("utf-8")
    return out
