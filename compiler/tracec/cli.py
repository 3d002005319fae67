"""The ``tracec`` command line.

Payload on stdout (``--json``: exactly one JSON document), narration and
progress on stderr.  Exit codes are mapped here, once (docs/architecture.md):
0 ok / gate open / valid, 1 gate refused / bundle invalid, 2 usage,
3 bad input, 4 internal failure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import click

from tracec import outputs
from tracec.errors import TracecError

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3, 4


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
def cli() -> None:
    """Compile LLM traces into a certified, signed routing bundle; verify and route it."""


@cli.command("compile")
@click.argument("traces", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Bundle directory to write.")
@click.option("--embeddings", type=click.Path(path_type=Path, dir_okay=False),
              help="Row-aligned .npy embeddings (default: compute with all-MiniLM-L6-v2, cached).")
@click.option("--embedder-id", help="Name of the model that produced --embeddings (recorded in the manifest).")
@click.option("--alpha", default="0.9", show_default=True,
              help="Teacher-agreement target; a comma list builds frontier.json, the bundle uses the first.")
@click.option("--delta", default=0.05, show_default=True, type=float, help="Allowed failure probability.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--trees", is_flag=True, help="Add size-capped tree models to the candidate pool.")
@click.option("--families", default="global,l2d,cascade", show_default=True)
@click.option("--split", "split_text", default="auto", show_default=True,
              help="train,validation,calibration,shadow fractions, or 'auto' (calibration about "
                   "3,000 rows within 15-30 %, validation 15 %, shadow 10 %).")
@click.option("--size-budget-mb", default=5.0, show_default=True, type=float)
@click.option("--signing-key", type=click.Path(path_type=Path, dir_okay=False), help="NAME.key from `tracec keygen`.")
@click.option("--previous", type=click.Path(path_type=Path, file_okay=False), help="Previous bundle, for deltas.")
@click.option("--previous-public-key", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--no-examples", is_flag=True, help="Artifacts hold counts only, no trace text.")
@click.option("--teacher-cost-per-1k", type=float, help="LLM cost per 1,000 calls, for the cost projection.")
@click.option("--daily-volume", type=int, help="Requests per day, for the cost projection.")
@click.option("--force", is_flag=True, help="Replace an existing bundle at --out.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def compile_cmd(traces, out, embeddings, embedder_id, alpha, delta, seed, trees, families, split_text,
                size_budget_mb, signing_key, previous, previous_public_key, no_examples,
                teacher_cost_per_1k, daily_volume, force, as_json):
    """Compile TRACES (JSONL) into a bundle.  Exit 0: gate open; 1: refused (closed bundle written)."""
    from tracec.config import CompileConfig, parse_alphas
    from tracec.pipeline import compile_bundle
    from tracec.splits import parse_fractions

    config = CompileConfig(
        traces=traces, out=out, embeddings=embeddings, embedder_id=embedder_id,
        alphas=parse_alphas(alpha), delta=delta, seed=seed, include_trees=trees,
        families=tuple(f.strip() for f in families.split(",") if f.strip()),
        fractions=parse_fractions(split_text), size_budget_bytes=int(size_budget_mb * 1e6),
        signing_key=signing_key, previous=previous, previous_public_key=previous_public_key,
        no_examples=no_examples, teacher_cost_per_1k=teacher_cost_per_1k, daily_volume=daily_volume,
        force=force)
    result = compile_bundle(config, progress=_say)
    doc = {"bundle": result.out, "gate": "open" if result.gate_open else "closed",
           "explanation": result.explanation, "manifest": result.manifest,
           "frontier": result.frontier, "timings_s": result.timings}
    if as_json:
        _say(result.explanation)
    _emit(outputs.CompileOutput, doc, as_json, result.explanation)
    sys.exit(EXIT_OK if result.gate_open else EXIT_REFUSED)


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
    verified = verify_bundle(bundle, public_key=public_key, allow_unsigned=allow_unsigned)
    m = verified.manifest
    signed = bool(verified.signed)
    doc = {"bundle": str(bundle), "valid": True, "signed": signed, "files": sorted(verified.files),
           "gate": m["policy"]["gate"], "alpha": m["policy"]["alpha"], "tau": m["policy"]["tau"]}
    _emit(outputs.VerifyOutput, doc, as_json, f"OK: {bundle} ({len(verified.files)} files, "
                        f"{'signature valid' if signed else 'UNSIGNED'}; gate {m['policy']['gate']})")


@cli.command("route")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--embeddings", required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--traces", type=click.Path(path_type=Path, dir_okay=False),
              help="Row-aligned traces: adds coverage and TA against their teacher labels.")
@_key_options
@click.option("--json", "as_json", is_flag=True)
def route_cmd(bundle, embeddings, traces, public_key, allow_unsigned, as_json):
    """Route EMBEDDINGS through BUNDLE; print decisions (and coverage/TA when --traces is given)."""
    from tracec.routing import route_file

    _require_key(public_key, allow_unsigned)
    doc, text = route_file(bundle, embeddings, traces, public_key, allow_unsigned)
    _emit(outputs.RouteOutput, doc, as_json, text)


@cli.command("embed")
@click.argument("traces", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path, dir_okay=False))
def embed_cmd(traces, out):
    """Embed TRACES' inputs with the default offline embedder into OUT (.npy, float32)."""
    from tracec.embeddings import embed_texts, save_npy
    from tracec.traces import load_traces

    rows = load_traces(traces)
    X = embed_texts(rows.inputs, progress=lambda done, total: _say(f"embedding {done:,}/{total:,}"))
    save_npy(out, X)
    click.echo(json.dumps({"embeddings": str(out), "rows": int(X.shape[0]), "dimension": int(X.shape[1])}))


@cli.command("keygen")
@click.option("--out", required=True, help="Writes OUT.key (private, mode 0600) and OUT.pub.")
def keygen_cmd(out):
    """Create an Ed25519 signing key pair (JSON Web Keys)."""
    from tracec_runtime.keys import write_keypair

    private, public = write_keypair(out)
    click.echo(json.dumps({"private_key": str(private), "public_key": str(public)}))


@cli.command("report")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), help="Default: BUNDLE/../NAME.report.html")
@_key_options
def report_cmd(bundle, out, public_key, allow_unsigned):
    """Write a self-contained HTML report of BUNDLE (verified first)."""
    from tracec.report import render_report

    _require_key(public_key, allow_unsigned)
    out = out or Path(bundle).resolve().parent / f"{Path(bundle).name}.report.html"
    path = render_report(bundle, out, public_key=public_key, allow_unsigned=allow_unsigned)
    click.echo(str(path))


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: the single place where errors become exit codes."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_USAGE)
    except click.exceptions.Abort:
        _say("aborted")
        sys.exit(EXIT_USAGE)
    except TracecError as e:
        _say(f"error: {e.diagnostics()}")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
