"""The ``tracec`` command line.

Payload on stdout (``--json``: exactly one JSON document, also on failure:
``{"ok": false, "error": {...}}``), narration and progress on stderr.  Exit
codes are mapped in ``main`` with the runtime CLI's table
(``tracec_runtime.cli``, docs/architecture.md): 0 ok / gate open / valid,
1 gate refused / bundle invalid, 2 usage, 3 bad input, 4 internal error,
130 SIGINT, 143 SIGTERM.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import click

from tracec import outputs
from tracec.cli_options import embedding_options, trace_options
from tracec_runtime.cli import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, report_failure


def _say(msg: str) -> None:
    click.echo(msg, err=True)


def _emit(model, doc: dict, as_json: bool, text: str) -> None:
    """Validate ``doc`` against its output model (schemas/cli-*.schema.json), then print it."""
    if as_json:
        doc = model.model_validate(doc).model_dump(mode="json")
        click.echo(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        click.echo(text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tracec")
@click.option("--debug", is_flag=True, help="Print the traceback of an internal error (exit 4).")
def cli(debug) -> None:  # noqa: ARG001 - main() reads --debug before click parses anything
    """Compile LLM traces into a certified, signed routing bundle; verify and route it."""


@cli.command("compile")
@click.argument("traces", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@trace_options
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Bundle directory to write.")
@embedding_options
@click.option("--alpha", default="0.9", show_default=True,
              help="Teacher-agreement target; a comma list builds frontier.json, the bundle uses the first.")
@click.option("--delta", default=0.05, show_default=True, type=float, help="Allowed failure probability.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--trees", is_flag=True, help="Add size-capped tree models to the candidate pool.")
@click.option("--families", default="global,l2d,cascade", show_default=True)
@click.option("--split", "split_text", default="auto", show_default=True,
              help="train,validation,calibration,shadow fractions, or 'auto' (calibration "
                   "about 3,000 rows within 15-30 %, validation 15 %, shadow 10 %).")
@click.option("--size-budget-mb", default=5.0, show_default=True, type=float)
@click.option("--signing-key", type=click.Path(path_type=Path, dir_okay=False), help="NAME.key from `tracec keygen`.")
@click.option("--unsigned", is_flag=True, help="Write an unsigned bundle (needed when no --signing-key is given).")
@click.option("--previous", type=click.Path(path_type=Path, file_okay=False), help="Previous "
              "bundle, for deltas; a decision log is checked against it (replayed; live figures).")
@click.option("--previous-public-key", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--no-examples", is_flag=True, help="Artifacts hold counts only, no trace text.")
@click.option("--teacher-cost-per-1k", type=float, help="LLM cost per 1,000 calls, for the cost projection.")
@click.option("--daily-volume", type=int, help="Requests per day, for the cost projection.")
@click.option("--force", is_flag=True, help="Replace an existing bundle at --out.")
@click.option("--ood-quantile", default=0.005, show_default=True, type=float, help="OOD gate: share of training rows it rejects.")
@click.option("--no-ood", is_flag=True, help="No out-of-distribution gate (unlike inputs not deferred).")
@click.option("--rules", "rules_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Routing rules (.yaml/.json): never_handle, min_alpha, max_handled_share.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def compile_cmd(traces, trace_options, out, embeddings, embedder_id, embedder, alpha, delta, seed,
                trees, families, split_text, size_budget_mb, signing_key, unsigned, previous,
                previous_public_key, no_examples, teacher_cost_per_1k, daily_volume, force,
                ood_quantile, no_ood, rules_path, as_json):
    """Compile TRACES (a file, .gz or - for stdin; --format) into a bundle.  Exit 0: gate open;
    1: refused (closed bundle written)."""
    _require_signing_choice(signing_key, unsigned)
    from tracec.api import compile as compile_traces
    from tracec.config import budget_bytes

    result = compile_traces(
        traces, out=out, alpha=alpha, delta=delta, embeddings=embeddings, signing_key=signing_key,
        progress=_say, embedder_id=embedder_id, embedder=embedder, seed=seed, include_trees=trees,
        families=families, fractions=split_text, size_budget_bytes=budget_bytes(size_budget_mb),
        previous=previous, previous_public_key=previous_public_key, no_examples=no_examples,
        teacher_cost_per_1k=teacher_cost_per_1k, daily_volume=daily_volume, force=force,
        ood_quantile=None if no_ood else ood_quantile, rules=rules_path, **trace_options)
    doc = {"bundle": result.out, "gate": "open" if result.gate_open else "closed",
           "explanation": result.explanation, "manifest": result.manifest,
           "frontier": result.frontier, "timings_s": result.timings, "traces": result.traces,
           "ok": result.gate_open}
    if not result.gate_open:
        doc["error"] = {"type": "GateRefused", "exit_code": EXIT_REFUSED,
                        "message": result.explanation, "explanation": result.explanation}
    if as_json:
        _say(result.explanation)
    _emit(outputs.CompileOutput, doc, as_json, result.explanation)
    sys.exit(EXIT_OK if result.gate_open else EXIT_REFUSED)


@cli.command("scan")
@click.argument("traces", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@trace_options
@embedding_options
@click.option("--alphas", default="0.8,0.85,0.9,0.95", show_default=True,
              help="Teacher-agreement targets to scan (comma list).")
@click.option("--delta", default=0.05, show_default=True, type=float, help="Allowed failure probability.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def scan_cmd(traces, trace_options, embeddings, embedder_id, embedder, alphas, delta, seed, as_json):
    """Before compiling: the coverage TRACES would certify now per alpha, a learning-curve
    projection of how many more traces would raise it, and the labels to collect (docs/scan.md).
    Exit 0 (also when nothing certifies); 2 usage; 3 bad input."""
    from tracec.config import parse_alphas
    from tracec.scan import scan, scan_config, text

    config = scan_config(traces, parse_alphas(alphas), delta, seed, embeddings=embeddings,
                         embedder_id=embedder_id, embedder=embedder, **trace_options)
    doc = scan(config, _say)
    if as_json:
        _say(text(doc))
    _emit(outputs.ScanOutput, doc, as_json, text(doc))


def _require_signing_choice(signing_key: Optional[Path], unsigned: bool) -> None:
    if signing_key is None and not unsigned:
        raise click.UsageError("compile needs --signing-key NAME.key (create one with `tracec keygen "
                               "--out NAME`), or --unsigned to write an unsigned bundle explicitly")
    if signing_key is not None and unsigned:
        raise click.UsageError("--signing-key and --unsigned contradict each other: pass one")


def _key_options(fn):
    fn = click.option("--allow-unsigned", is_flag=True,
                      help="UNSAFE: accept a bundle without a signature (digests are still checked).")(fn)
    return click.option("--public-key", type=click.Path(path_type=Path, dir_okay=False),
                        help="The deployer's NAME.pub (never read from the bundle).")(fn)


def _require_key(public_key: Optional[Path], allow_unsigned: bool) -> None:
    if public_key is None and not allow_unsigned:
        raise click.UsageError("pass --public-key NAME.pub, or --allow-unsigned to skip the signature check")


@cli.command("verify")
@click.argument("bundle", type=click.Path(path_type=Path))
@_key_options
@click.option("--json", "as_json", is_flag=True)
def verify_cmd(bundle, public_key, allow_unsigned, as_json):
    """Verify BUNDLE's signature and every file digest.  Exit 0 valid, 1 invalid."""
    from tracec_runtime.verify import verify_bundle

    _require_key(public_key, allow_unsigned)
    from tracec.codegen.statement import is_codegen_dir
    if is_codegen_dir(bundle):  # a `tracec codegen` package, not a bundle
        from tracec.codegen.cli import verify_codegen_cmd
        return verify_codegen_cmd(bundle, public_key, allow_unsigned, as_json)
    verified = verify_bundle(bundle, public_key=public_key, allow_unsigned=allow_unsigned)
    m = verified.manifest
    signed = bool(verified.signed)
    doc = {"bundle": str(bundle), "valid": True, "signed": signed, "files": sorted(verified.files),
           "gate": m["policy"]["gate"], "alpha": m["policy"]["alpha"], "tau": m["policy"]["tau"]}
    _emit(outputs.VerifyOutput, doc, as_json, f"OK: {bundle} ({len(verified.files)} files, "
                        f"{'signature valid' if signed else 'UNSIGNED'}; gate {m['policy']['gate']})")


@cli.command("codegen")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--lang", required=True, type=click.Choice(["c", "java", "js", "go", "python"]))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Directory to write (must not exist).")
@click.option("--signing-key", type=click.Path(path_type=Path, dir_okay=False), help="Sign the package statement (NAME.key).")
@click.option("--force", is_flag=True, help="Replace an earlier codegen package at --out.")
@_key_options
@click.option("--json", "as_json", is_flag=True)
def codegen_cmd(bundle, lang, out, signing_key, force, public_key, allow_unsigned, as_json):
    """Generate dependency-free LANG source for BUNDLE's policy (verified first).  docs/codegen.md."""
    from tracec.codegen.cli import codegen_cmd as run

    _require_key(public_key, allow_unsigned)
    run(bundle, lang, out, signing_key, force, public_key, allow_unsigned, as_json)


@cli.command("route")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--embeddings", type=click.Path(path_type=Path, dir_okay=False),
              help="Embeddings (.npy) to route; without it a text-in bundle embeds --traces or --text.")
@click.option("--traces", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
              help="Inputs (any --format; teacher labels optional: they add TA); row-aligned "
                   "with --embeddings.")
@click.option("--text", "one_text", help="Route one text (text-in bundles).")
@trace_options
@_key_options
@click.option("--json", "as_json", is_flag=True)
def route_cmd(bundle, embeddings, traces, one_text, trace_options, public_key, allow_unsigned,
              as_json):
    """Route through BUNDLE; print decisions (and coverage/TA when --traces has teacher labels)."""
    from tracec.routing import route_file

    _require_key(public_key, allow_unsigned)
    if embeddings is None and traces is None and one_text is None:
        raise click.UsageError("pass --embeddings FILE.npy, --traces FILE.jsonl or --text TEXT")
    if one_text is not None and (embeddings is not None or traces is not None):
        raise click.UsageError("--text routes one text: it cannot be combined with --embeddings or --traces")
    doc, text = route_file(bundle, embeddings, traces, public_key, allow_unsigned, one_text,
                           trace_options=trace_options, say=_say)
    for warning in doc["summary"]["warnings"]:
        _say(f"warning: {warning}")
    _emit(outputs.RouteOutput, doc, as_json, text)


@cli.command("embed")
@click.argument("traces", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@trace_options
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def embed_cmd(traces, trace_options, out, as_json):
    """Embed TRACES' inputs (teacher labels not needed; any --format) with the default offline
    embedder into OUT (.npy, float32, one row per trace read, in order)."""
    from tracec.embeddings import embed_texts, save_npy
    from tracec.loader import describe_read
    from tracec.texts import read_texts

    texts = read_texts(traces, **trace_options)
    rows = texts.traces
    _say(f"traces {describe_read(rows)}")
    X = embed_texts(texts.inputs, source=str(traces),
                    progress=lambda done, total: _say(f"embedding {done:,}/{total:,}"))
    save_npy(out, X)
    doc = {"embeddings": str(out), "rows": int(X.shape[0]), "dimension": int(X.shape[1]),
           "format": rows.format, "skipped": rows.skipped}
    _emit(outputs.EmbedOutput, doc, as_json, str(out))


@cli.command("keygen")
@click.option("--out", required=True, help="Writes OUT.key (private, mode 0600) and OUT.pub.")
@click.option("--json", "as_json", is_flag=True)
def keygen_cmd(out, as_json):
    """Create an Ed25519 signing key pair (JSON Web Keys)."""
    from tracec_runtime.keys import write_keypair

    private, public = write_keypair(out)
    _emit(outputs.KeygenOutput, {"private_key": str(private), "public_key": str(public)}, as_json,
          f"{private}\n{public}")


@cli.command("report")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), help="Default: BUNDLE/../NAME.report.html")
@_key_options
@click.option("--json", "as_json", is_flag=True)
def report_cmd(bundle, out, public_key, allow_unsigned, as_json):
    """Write a self-contained HTML report of BUNDLE (verified first)."""
    from tracec.report import render_report

    _require_key(public_key, allow_unsigned)
    out = out or Path(bundle).resolve().parent / f"{Path(bundle).name}.report.html"
    path = render_report(bundle, out, public_key=public_key, allow_unsigned=allow_unsigned)
    _emit(outputs.ReportOutput, {"report": str(path), "bundle": str(bundle)}, as_json, str(path))


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: the single place where errors become exit codes (``--json``: the error
    document on stdout; unexpected exceptions: exit 4, traceback to a file, ``--debug`` prints it)."""
    from tracec.signals import terminate_as_exception

    args = list(sys.argv[1:] if argv is None else argv)
    as_json, debug = "--json" in args, "--debug" in args
    try:
        with terminate_as_exception():
            cli.main(args=args, standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        if not as_json:
            e.show()
        sys.exit(_usage_failure(e, as_json))
    except click.exceptions.Abort as e:  # click turns Ctrl-C (KeyboardInterrupt) into Abort
        cause = e.__cause__ if isinstance(e.__cause__, KeyboardInterrupt) else KeyboardInterrupt()
        sys.exit(report_failure(cause, as_json=as_json, debug=debug, prog="tracec"))
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - TracecError, Terminated, KeyboardInterrupt, bugs
        sys.exit(report_failure(e, as_json=as_json, debug=debug, prog="tracec"))


def _usage_failure(exc: click.ClickException, as_json: bool) -> int:
    from tracec_runtime.cli import error_document, print_json

    if as_json:
        click.echo(f"usage: {exc.format_message()}", err=True)
        print_json(error_document(exc, EXIT_USAGE, exc.format_message(), "UsageError"))
    return EXIT_USAGE


if __name__ == "__main__":
    main()
