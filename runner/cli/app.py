"""The ``vat`` command: one verb per pipeline step.

Config verbs (``plan``, ``run``, ``report``, ``demo``) take Hydra overrides (``key=value``); the others
take ordinary flags. ``format=json`` works with every verb: stdout then holds one JSON document.
Heavy imports (LiteLLM, Hydra, DuckDB) happen inside the verbs, so ``vat --help`` and ``vat validate``
stay fast.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runner.core.errors import Terminated, VatError, note_sigterm, stop_reason

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
  vat report format=results > results.json       the versioned results document (runner/results.schema.json)
  vat report format=eee > eee.json               the same as Every Eval Ever records, one per model
  vat report target=security strategy=fewshot_8 format=latex   only those conditions, as paper tables
  vat report report.plots=true                   also write SVG plots to results/report/
  vat figures out=results/figures                paper figures, PDF and PNG at print size (the figures extra)
  vat run -m strategy=fewshot_2,fewshot_4,fewshot_8 target=security,power     a sweep (Hydra multirun)
  vat run -m experiment=paper_prompt_steering    the paper's grid; experiment=smoke runs on the mock judge

config keys (override any with key=value; `vat plan --cfg job` prints them all):
  model=smollm2|openai_gpt4o_mini|anthropic_claude_haiku|vllm   model.name=<any LiteLLM model string>
  strategy=baseline|fewshot_2|fewshot_4|fewshot_8|fewshot_<2|4|8>_balanced|system_prompt|checkpoint
  target=<value id>  direction=reinforce|suppress  selection.split=test  selection.max_scenes=N (or limit=N)
  store.path=results/vat.duckdb  execution.concurrency=8  execution.max_retries=4  execution.timeout_s=60
  execution.workers=N (processes; default one per core for remote models)  execution.mode=online|batch
"""

LEADERBOARD_EPILOG = """\
examples:
  vat run model=openai__gpt-4o-mini             any leaderboard entry is also a `model` option
  vat leaderboard plan entry=openai__gpt-4o-mini release=v0.1    price every condition (pre once); sends nothing
  vat leaderboard run entry=openai__gpt-4o-mini release=v0.1     judge every condition of the release
  vat bundle entry=openai__gpt-4o-mini release=v0.1 out=sub.tar.gz
  vat verify sub.tar.gz replay=20               recompute, check, and re-ask the provider 20 times
  vat leaderboard build out=results/site        static site from leaderboard/submissions/ and the store
  vat leaderboard release-scenes                the id@version pins of the current test and train splits
  vat leaderboard freeze release=v0.1           copy what a release pins into leaderboard/releases/<r>/spec/
"""

CONFIG_VERBS = {"plan", "run", "report", "demo", "validate-metrics", "power"}
CONFIG_VERBS |= {"generate", "import"}  # the dataset verbs (docs/dataset.md)
CONFIG_VERBS |= {"figures"}  # print-size figures (runner.report.figures), composed like `vat report`

DATASET_EPILOG = """\
examples:
  vat generate scenes model.name=openai/gpt-4o-mini countries=[ng,eg] topics=[health]
  vat generate scenes model.name=mock/generator out=results/try-generate        instant fake, to try the pipeline
  vat generate actions scenes=[us-health] granularity=micro_value model.name=openai/gpt-4o-mini
  vat import mapping=docs/examples/import/mapping.yaml out=results/try-import
  vat import source=data.parquet columns.country=country columns.topic=topic columns.action=text ...

generate keys: countries=[..] topics=[..] per_cell values=[..] granularity=value|micro_value scenes=[..]
  source=<folder> out=results/generated judge=true judge_model=<model> temperature attempts split overwrite
import keys: source mapping=<file.yaml> columns.<field>=<column or column.key> polarity_labels.<label>=...
  country_names.<name>=<code> topic_names.<name>=<id> value_names.<name>=<id> scene_split out max_rows
  split subset revision=<commit> (Hub ids) strict_names=true; source may be a file, a Hub-layout folder or a Hub id
(bare keys are short for generate.<key> / importer.<key>; model.*, execution.* work as in `vat run`)
"""


OVERRIDE_ALIASES = {"limit": "selection.max_scenes"}
"""Short keys of `vat plan/run/demo` (as lm-eval and inspect spell them) → the config key they set."""


def _alias(override: str) -> str:
    """``limit=5`` → ``selection.max_scenes=5`` (sweeps too: ``limit=2,5``); other overrides unchanged."""
    key, sep, value = override.partition("=")
    return f"{OVERRIDE_ALIASES[key]}={value}" if sep and key in OVERRIDE_ALIASES else override


def _split_format(args: Sequence[str]) -> tuple[list[str], str | None]:
    """Pull ``format=...`` out of a verb's arguments (it is understood by every verb)."""
    rest, fmt = [], None
    for a in args:
        if a.startswith("format="):
            fmt = a.split("=", 1)[1]
        else:
            rest.append(a)
    verb = next((a for a in rest if not a.startswith("-")), None)
    if verb == "report" and fmt in ("csv", "markdown", "latex", "results", "eee"):
        return rest + [f"format={fmt}"], None  # paper tables: `vat report` reads them (runner.cli.verbs)
    if fmt not in (None, "json", "table"):
        raise VatError(
            f"format={fmt!r} is not supported; use format=json or format=table"
            + (
                " (and csv, markdown or latex tables, format=results or format=eee, for `vat report`)"
                if verb == "report"
                else ""
            ),
            2,
        )
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
    v.add_argument("--spec-dir", default="spec", help="spec folder: spec_dir=<folder> (default: spec)")
    v.add_argument(
        "--update-lock",
        action="store_true",
        help="record new (id, version, hash) entries in spec/spec.lock.json",
    )
    v.add_argument("--coverage", action="store_true", help="also print the country × topic coverage table")
    for verb, text in (
        ("plan", "compile a run and show requests, cache hits, tokens and cost — sends nothing"),
        ("run", "compile and send the missing requests; resumable (the store is the cache)"),
        (
            "report",
            "VAT metrics of the runs in the store (target=/strategy=/direction= filter; "
            "format=json|csv|markdown|latex|results|eee; report.plots=true)",
        ),
        ("demo", "run, report and build the site on the embedded model (what `make demo` calls)"),
        (
            "figures",
            "print-size PDF and PNG figures with intervals (out=DIR; the report's filters; needs the figures extra)",
        ),
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
    for verb, text in (
        (
            "bundle",
            "pack an entry's judgments of a release into a submission bundle (entry=<id> release=<r>)",
        ),
        (
            "verify",
            "check a bundle: recompute every metric, check every key and hash (replay=N asks the provider)",
        ),
        (
            "leaderboard",
            "leaderboard run|plan|build|release-scenes|freeze: judge or price a release, build the static site",
        ),
    ):
        sp = sub.add_parser(
            verb,
            help=text,
            description=text,
            epilog=LEADERBOARD_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sp.add_argument(
            "args", nargs="*", help="key=value arguments (and Hydra overrides such as store.path=)"
        )
    for verb, text, epilog in (
        (
            "validate-metrics",
            "known-answer check: simulated judges with planted values run through the pipeline; planted vs measured",
            "examples:\n  vat validate-metrics                      every profile in conf/sim/, all scenes\n"
            "  vat validate-metrics profile=circle selection.split=test   one profile, test scenes\n"
            "  vat validate-metrics store.path=results/validation.duckdb  keep the judgments\n"
            "the generative model and the checks: docs/validation.md",
        ),
        (
            "power",
            "how many scenes a gain or an nVAT difference needs (simulated replicate datasets)",
            "examples:\n  vat power                                 gain 0.05, nVAT difference 0.03, circle profile\n"
            "  vat power gain=0.1 nvat_diff=0.05 noise=0.5 amplitude=0.3 reps=500\n"
            "keys: profile gain nvat_diff nvat_gain amplitude noise alpha power reps seed target direction\n"
            "      grid=10,20,40 samples=1,2,4 spec_dir format",
        ),
    ):
        sp = sub.add_parser(
            verb,
            help=text,
            description=text,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sp.add_argument(
            "overrides", nargs="*", help="key=value options (and Hydra overrides for validate-metrics)"
        )
    g = sub.add_parser(
        "generate",
        help="write new scenes (stage I + II) or new actions with any model, plus judge scores, for review",
        description="the two-stage generation pipeline: scenes for (country, topic) cells, then one action "
        "per (scene, value or micro-value, polarity), each scored by an LLM judge; YAML for review",
        epilog=DATASET_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g.add_argument(
        "stage", choices=["scenes", "actions"], help="scenes: new scenes; actions: for existing scenes"
    )
    g.add_argument("overrides", nargs="*", help="key=value (generate keys and Hydra overrides)")
    im = sub.add_parser(
        "import",
        help="turn an external scenario-action dataset (CSV/JSON/Parquet/Hub) into scene YAML for review",
        description="read a dataset with a column mapping, map names to our ids, write one YAML per scene",
        epilog=DATASET_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    im.add_argument("overrides", nargs="*", help="key=value (import keys and Hydra overrides)")
    ls = sub.add_parser(
        "list",
        help="list the shipped values, strategies, prompts, leaderboard releases or entries (format=json)",
    )
    ls.add_argument("kind", choices=("values", "strategies", "prompts", "releases", "entries"))
    ls.add_argument(
        "--spec-dir",
        default="spec",
        help="spec folder: spec_dir=<folder> (default: spec, else the shipped one)",
    )
    e = sub.add_parser(
        "export",
        help="write the scene set as a Hub dataset folder (train/test splits, dataset card), or one Parquet/JSONL file",
    )
    e.add_argument("output", help="a folder (Hub dataset layout), or a .parquet or .jsonl file")
    e.add_argument("--spec-dir", default="spec", help="spec folder: spec_dir=<folder> (default: spec)")
    ing = sub.add_parser(
        "ingest",
        help="load sweep shards (Parquet) into the store; idempotent",
        description="Load the shards that parallel sweep jobs wrote (job folders, a sweep folder, Parquet files "
        "or fsspec URLs such as s3://bucket/sweep/0/shard) into the DuckDB store. Keys already stored are skipped.",
    )
    ing.add_argument("paths", nargs="+", help="shard folders, sweep folders, .parquet files or fsspec URLs")
    ing.add_argument(
        "--store",
        default="results/vat.duckdb",
        help="the DuckDB store: store.path=<file> (default: results/vat.duckdb)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vat`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from runner.core import display

    previous = _catch_sigterm()
    try:
        argv = one_path_spelling(argv)
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
            # format= before the flags: after `-m`, Hydra's parser takes no more overrides.
            args.overrides = list(args.overrides) + ([f"format={fmt}"] if fmt else []) + unknown
            if args.verb in ("plan", "run", "demo"):
                from runner.config import renamed_groups  # omegaconf: not for `vat --help`

                args.overrides = renamed_groups([_alias(o) for o in args.overrides])
        args.format = fmt or "table"
        return int(_VERBS[args.verb](args) or 0)
    except VatError as exc:
        display.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt as exc:
        terminated = stop_reason(exc) == "terminated"
        what = "terminated (SIGTERM)" if terminated else "interrupted"
        display.error(f"{what}; nothing is lost — run the same command again to resume")
        return 143 if terminated else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


# The verbs that are not Hydra apps take the Hydra verbs' spelling of a path too: one spelling everywhere.
_PATH_FLAGS: dict[str, dict[str, str]] = {
    "validate": {"spec_dir": "--spec-dir"},
    "list": {"spec_dir": "--spec-dir"},
    "export": {"spec_dir": "--spec-dir"},
    "ingest": {"store.path": "--store"},
}


def one_path_spelling(argv: list[str]) -> list[str]:
    """``spec_dir=X`` and ``store.path=X`` for every verb (the old ``--spec-dir X`` / ``--store X`` warn).

    `vat run spec_dir=mine` and `vat validate spec_dir=mine` now read alike; the flags keep working
    for one release, with a note naming the new spelling.
    """
    from runner.core import display

    flags = _PATH_FLAGS.get(argv[0]) if argv else None
    if not flags:
        return argv
    out = [argv[0]]
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if sep and key in flags:
            out += [flags[key], value]
            continue
        old = next((k for k, flag in flags.items() if key == flag), None)
        if old is not None:
            display.warn(
                f"{key} is deprecated: write {old}=<path>, as every verb does (the flag still works)"
            )
        out.append(arg)
    return out


def _raise_terminated(signum: int, frame: Any) -> None:
    """Stop as Ctrl-C would: through asyncio's graceful handler while a run's event loop is up.

    Raising at an arbitrary bytecode of the event loop skips the cancellation that lets every worker
    finish its bookkeeping and the writer flush; asyncio installs that handler for SIGINT only.
    """
    note_sigterm()
    on_sigint = signal.getsignal(signal.SIGINT)
    if callable(on_sigint) and on_sigint is not signal.default_int_handler:
        # asyncio.Runner's handler: it cancels the main task and raises KeyboardInterrupt after it.
        on_sigint(signal.SIGINT, frame)
        return
    raise Terminated()


def _catch_sigterm() -> Any:
    """Turn SIGTERM into :class:`Terminated`, so a run stops as on Ctrl-C (answers kept, a message, exit 143).

    Python's default for SIGTERM is to die at once: no message, and the last answers unflushed. Returns
    the previous handler, or None where no handler can be set (not the main thread).
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _verb_validate(args: argparse.Namespace) -> int:
    from runner.cli.verbs import validate

    return validate(args.spec_dir, update_lock=args.update_lock, fmt=args.format, show_coverage=args.coverage)


def _verb_plan(args: argparse.Namespace) -> int:
    from runner.cli.verbs import plan

    return plan(args.overrides, print_cfg=bool(getattr(args, "cfg", None)))


def _verb_run(args: argparse.Namespace) -> int:
    from runner.cli.verbs import run

    _preflight_overrides(args.overrides)
    return run(args.overrides)


_OUTPUT_DIR_KEYS = ("hydra.run.dir", "hydra.sweep.dir")


def _check_output_dirs(argv: list[str]) -> None:
    """Refuse a run folder that is the filesystem root or the home folder (Hydra writes .hydra/ into it)."""
    for arg in argv:
        key, _, value = arg.lstrip("+").partition("=")
        if key not in _OUTPUT_DIR_KEYS or not value or "$" in value:
            continue  # an interpolation (${now:...}) is Hydra's to resolve
        folder = Path(value.strip("'\"")).expanduser().resolve()
        if folder == folder.parent or folder == Path.home().resolve():
            raise VatError(
                f"{key}={value} would write this run's files (.hydra/, result.json) into {folder}: give the "
                f"run a folder of its own, e.g. {key}=results/runs/mine",
                2,
            )


def _preflight_overrides(argv: list[str]) -> None:
    """Compose every job's config before Hydra starts, so a bad override is one clear line (exit 2).

    Hydra's own report spans several lines, and in a sweep it comes only when the bad job is launched.
    """
    _check_output_dirs(argv)
    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in argv):
        return  # --cfg, --help, --info ...: Hydra's own flags, left to Hydra
    from hydra.errors import HydraException

    from runner.config import compose

    try:
        if "-m" in argv or "--multirun" in argv:
            from runner.sweep import sweep_jobs

            jobs = sweep_jobs(argv)
        else:
            jobs = [argv]
    except HydraException as exc:
        raise VatError(
            f"invalid override: {str(exc).splitlines()[0]}; write key=value (see `vat --help`)", 2
        ) from None
    cfgs = [compose(list(job)) for job in jobs]
    if len(cfgs) > 1:  # a sweep: check each job's target and strategy now, not when its turn comes
        from runner.config import check_against_spec
        from runner.spec.load import load_index

        indexes = {d: load_index(d) for d in {str(c.spec_dir) for c in cfgs}}
        for cfg in cfgs:
            index = indexes[str(cfg.spec_dir)]
            check_against_spec(cfg, index.value_ids, list(index.strategies))


def _verb_report(args: argparse.Namespace) -> int:
    from runner.cli.verbs import report

    return report(args.overrides)


def _verb_demo(args: argparse.Namespace) -> int:
    from runner.cli.verbs import demo

    return demo(args.overrides)


def _verb_figures(args: argparse.Namespace) -> int:
    from runner.cli.figures import figures_command

    return figures_command(args.overrides)


def _verb_list(args: argparse.Namespace) -> int:
    from runner.cli.listing import list_verb

    return list_verb(args.kind, args.spec_dir, fmt=args.format)


def _verb_export(args: argparse.Namespace) -> int:
    from runner.cli.verbs import export

    return export(args.spec_dir, args.output, fmt=args.format)


def _verb_ingest(args: argparse.Namespace) -> int:
    from runner.core import display
    from runner.store.shards import ingest

    counts = ingest(list(args.paths), args.store)
    if args.format == "json":
        display.emit_json(counts)
    else:
        display.note(f"ingested into {args.store}: " + ", ".join(f"{k} +{v:,}" for k, v in counts.items()))
    return 0


def _verb_validate_metrics(args: argparse.Namespace) -> int:
    from runner.cli.verbs import validate_metrics

    return validate_metrics(args.overrides)


def _verb_power(args: argparse.Namespace) -> int:
    from runner.cli.verbs import power

    return power(args.overrides)


def _verb_leaderboard_family(args: argparse.Namespace) -> int:
    from runner.cli import leaderboard as commands

    fn = {"bundle": commands.bundle, "verify": commands.verify, "leaderboard": commands.leaderboard}[
        args.verb
    ]
    return fn(args.args, fmt=args.format)


def _verb_generate(args: argparse.Namespace) -> int:
    from runner.cli.verbs import generate

    return generate(args.stage, args.overrides)


def _verb_import(args: argparse.Namespace) -> int:
    from runner.cli.verbs import import_dataset

    return import_dataset(args.overrides)


_VERBS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": _verb_validate,
    "plan": _verb_plan,
    "run": _verb_run,
    "report": _verb_report,
    "demo": _verb_demo,
    "figures": _verb_figures,
    "list": _verb_list,
    "export": _verb_export,
    "ingest": _verb_ingest,
    "generate": _verb_generate,
    "import": _verb_import,
    "validate-metrics": _verb_validate_metrics,
    "power": _verb_power,
    "bundle": _verb_leaderboard_family,
    "verify": _verb_leaderboard_family,
    "leaderboard": _verb_leaderboard_family,
}


if __name__ == "__main__":
    sys.exit(main())
