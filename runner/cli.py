"""The ``vat`` command: one verb per pipeline step.

Config verbs (``plan``, ``run``, ``report``, ``demo``) take Hydra overrides (``key=value``); the others
take ordinary flags. ``format=json`` works with every verb: stdout then holds one JSON document.
Heavy imports (LiteLLM, Hydra, DuckDB) happen inside the verbs, so ``vat --help`` and ``vat validate``
stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from runner.errors import VatError

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM otherwise fetches prices at import
os.environ.setdefault("HF_HUB_OFFLINE", "1")

EPILOG = """\
examples:
  vat validate                                   check every spec file
  vat plan target=power direction=suppress       what a run would send, and what it would cost
  vat run                                        embedded model, fewshot_4, security, reinforce
  vat run model=openai_gpt4o_mini strategy=fewshot_8 target=hedonism direction=suppress
  vat run model.name=hosted_vllm/my-model model.api_base=http://host:8000/v1
  vat report format=json                         every metric of every run in the store, as JSON
  vat report plots=true                          also write SVG plots to results/report/

config keys (override any with key=value; `vat plan --cfg job` prints them all):
  model=smollm2|openai_gpt4o_mini|anthropic_claude_haiku|vllm   model.name=<any LiteLLM model string>
  strategy=baseline|fewshot_2|fewshot_4|fewshot_8|system_prompt|checkpoint
  target=<value id>  direction=reinforce|suppress  selection.split=test  selection.max_scenes=N
  store.path=results/vat.duckdb  execution.concurrency=8  execution.max_retries=4  execution.timeout_s=60
"""

CONFIG_VERBS = {"plan", "run", "report", "demo"}


def _split_format(args: Sequence[str]) -> tuple[list[str], str | None]:
    """Pull ``format=...`` out of a verb's arguments (it is understood by every verb)."""
    rest, fmt = [], None
    for a in args:
        if a.startswith("format="):
            fmt = a.split("=", 1)[1]
        else:
            rest.append(a)
    if fmt not in (None, "json", "table"):
        raise VatError(f"format={fmt!r} is not supported; use format=json or format=table", 2)
    return rest, fmt


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vat",
        description="VAT Bench — measure the Value Alignment Tax: how an alignment intervention on one "
        "Schwartz value moves a model's other values.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"vat-bench {__import__('runner').__version__}")
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    v = sub.add_parser(
        "validate", help="check every spec file; one line per problem (path:line: field: message)"
    )
    v.add_argument("--spec-dir", default="spec", help="spec folder (default: spec)")
    v.add_argument(
        "--update-lock",
        action="store_true",
        help="record new (id, version, hash) entries in spec/spec.lock.json",
    )
    v.add_argument("--coverage", action="store_true", help="also print the country × topic coverage table")
    for verb, text in (
        ("plan", "compile a run and show requests, cache hits, tokens and cost — sends nothing"),
        ("run", "compile and send the missing requests; resumable (the store is the cache)"),
        ("report", "VAT metrics of the runs in the store (tables, format=json, plots=true)"),
        ("demo", "run, report and build the site on the embedded model (what `make demo` calls)"),
    ):
        sp = sub.add_parser(
            verb,
            help=text,
            description=text,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sp.add_argument("overrides", nargs="*", help="Hydra overrides, key=value")
        if verb == "plan":
            sp.add_argument("--cfg", choices=["job"], help="print the composed config and exit")
    e = sub.add_parser("export", help="write the scene set as one row per action (Parquet or JSONL)")
    e.add_argument("output", help="output file: .parquet or .jsonl")
    e.add_argument("--spec-dir", default="spec")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vat`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from runner import display

    try:
        argv, fmt = _split_format(argv)
        parser = _parser()
        args, unknown = parser.parse_known_args(argv)
        if args.verb is None:
            parser.print_help()
            return 0
        if unknown and args.verb not in CONFIG_VERBS:
            raise VatError(
                f"unknown argument(s) for `vat {args.verb}`: {' '.join(unknown)}; see `vat {args.verb} --help`",
                2,
            )
        if args.verb in CONFIG_VERBS:
            args.overrides = list(args.overrides) + unknown
            if fmt:
                args.overrides.append(f"format={fmt}")
        args.format = fmt or "table"
        return int(_VERBS[args.verb](args) or 0)
    except VatError as exc:
        display.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        display.error("interrupted; nothing is lost — run the same command again to resume")
        return 130


def _verb_validate(args: argparse.Namespace) -> int:
    from runner.commands import validate

    return validate(args.spec_dir, update_lock=args.update_lock, fmt=args.format, show_coverage=args.coverage)


def _verb_plan(args: argparse.Namespace) -> int:
    from runner.commands import plan

    return plan(args.overrides, print_cfg=bool(getattr(args, "cfg", None)))


def _verb_run(args: argparse.Namespace) -> int:
    from runner.commands import run

    return run(args.overrides)


def _verb_report(args: argparse.Namespace) -> int:
    from runner.commands import report

    return report(args.overrides)


def _verb_demo(args: argparse.Namespace) -> int:
    from runner.commands import demo

    return demo(args.overrides)


def _verb_export(args: argparse.Namespace) -> int:
    from runner.commands import export

    return export(args.spec_dir, args.output, fmt=args.format)


_VERBS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": _verb_validate,
    "plan": _verb_plan,
    "run": _verb_run,
    "report": _verb_report,
    "demo": _verb_demo,
    "export": _verb_export,
}


if __name__ == "__main__":
    sys.exit(main())
