"""The ``tracec codegen`` command and ``tracec verify`` of a codegen package (output only)."""

from __future__ import annotations

import json

import click

__all__ = ["codegen_cmd", "verify_codegen_cmd"]


def _print(doc: dict, as_json: bool, text: str) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=True) if as_json else text)


def codegen_cmd(bundle, lang, out, signing_key, force, public_key, allow_unsigned,
                as_json) -> None:
    from tracec.codegen import codegen

    summary = codegen(bundle, lang, out, public_key=public_key, allow_unsigned=allow_unsigned,
                      signing_key=signing_key, force=force)
    click.echo(f"wrote {len(summary['files'])} files to {out}; build: sh {out}/build.sh", err=True)
    _print(summary, as_json, str(out))


def verify_codegen_cmd(path, public_key, allow_unsigned, as_json) -> None:
    from tracec.codegen.statement import verify_codegen

    result = verify_codegen(path, public_key, allow_unsigned)
    pred = result["statement"]["predicate"]
    signed = result["signer"] is not None
    doc = {"codegen": str(path), "valid": True, "signed": signed, "language": pred["language"],
           "bundle_envelope_sha256": pred["bundle"]["envelope_sha256"], "files": result["files"]}
    _print(doc, as_json, f"OK: {path} (codegen {pred['language']}, {len(result['files'])} files, "
                         f"{'signature valid' if signed else 'UNSIGNED'}; from bundle "
                         f"{pred['bundle']['envelope_sha256'][:12]}\u2026)")
