"""The verbs behind ``vat``: each reads like the pipeline it runs (load → compile → execute → store → report)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from runner.core import display
from runner.core.errors import VatError

# ---------------------------------------------------------------- validate


def validate(
    spec_dir: str, update_lock: bool = False, fmt: str = "table", show_coverage: bool = False
) -> int:
    """Validate every spec file; print a summary (exit 0) or one line per problem (exit 1)."""
    from runner.api import check_spec
    from runner.core.paths import inside_installed_package
    from runner.core.paths import spec_dir as resolve_spec_dir
    from runner.spec.load import write_lock

    if update_lock and inside_installed_package(resolve_spec_dir(spec_dir)):
        raise VatError(
            "--update-lock would write into the spec shipped inside the installed package; copy that spec "
            "folder somewhere of your own and pass spec_dir=<copy>",
            2,
        )
    found = check_spec(spec_dir, check_lock=not update_lock)
    index, problems = found.index, found.problems
    n_spec = len(problems) - found.n_leaderboard
    if update_lock and index is not None and not problems:
        path = write_lock(index)
        display.note(f"recorded {len(index.hashes)} (id, version, hash) entries in {path}")
    summary = _summary(index) if index is not None else {}
    if fmt == "json":
        display.emit_json({"ok": not problems, "problems": [str(p) for p in problems], "summary": summary})
    else:
        for p in problems:
            display.out.print(display.escape(str(p)), soft_wrap=True)  # one line per problem, never wrapped
        if not problems and index is not None:
            _print_summary(summary)
        if show_coverage and index is not None:
            _print_coverage(index)
        if problems:
            display.error(_problem_summary(n_spec, len(problems) - n_spec, spec_dir))
    return 1 if problems else 0


def _problem_summary(n_spec: int, n_board: int, spec_dir: str) -> str:
    """The error line of `vat validate`: each count under its folder ("3 problem(s): 2 in spec/, 1 in leaderboard/")."""
    from runner.core.paths import leaderboard_dir

    # The folder's name, as the problem lines show it (leaderboard/entries/..., or lb/... for another board).
    shown = leaderboard_dir().name
    parts = [f"{n} in {where}/" for n, where in ((n_spec, spec_dir.rstrip("/")), (n_board, shown)) if n]
    return f"{n_spec + n_board} problem(s): " + ", ".join(parts)


def _summary(index: Any) -> dict[str, Any]:
    scenes = list(index.scenes.values())
    return {
        "value_system": index.value_system.id,
        "values": len(index.value_system.values),
        "micro_values": sum(len(v.micro_values) for v in index.value_system.values),
        "scenes": len(scenes),
        "actions": sum(len(s.actions) for s in scenes),
        "countries": len({s.country for s in scenes}),
        "topics": len({s.topic for s in scenes}),
        "splits": {sp: sum(1 for s in scenes if s.split.value == sp) for sp in ("train", "test")},
        "strategies": list(index.strategies),
        "prompts": list(index.prompts),
    }


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="spec/ is valid", title_justify="left", show_header=False)
    for key in ("value_system", "values", "micro_values", "scenes", "actions", "countries", "topics"):
        table.add_row(key.replace("_", " "), str(summary[key]))
    table.add_row("splits", ", ".join(f"{k} {v}" for k, v in summary["splits"].items()))
    table.add_row("strategies", ", ".join(summary["strategies"]))
    display.out.print(table)


def _print_coverage(index: Any) -> None:
    from rich.table import Table

    from runner.spec.models import COUNTRIES, TOPICS

    cells: dict[tuple[str, str], int] = {}
    for s in index.scenes.values():
        cells[(s.country, s.topic)] = cells.get((s.country, s.topic), 0) + 1
    table = Table(title="scenes per country × topic", title_justify="left")
    table.add_column("country")
    for t in TOPICS:
        table.add_column(t.replace("_", " ")[:10], justify="right")
    for c, name in COUNTRIES.items():
        table.add_row(name, *[str(cells.get((c, t), 0)) or "0" for t in TOPICS])
    display.out.print(table)


# ---------------------------------------------------------------- plan / run


def _compose(overrides: list[str]) -> DictConfig:
    from runner.config import compose

    return compose(overrides)


def plan(overrides: list[str], print_cfg: bool = False) -> int:
    """Compile a run (or every job of a sweep, with -m) and print what it would send and cost; sends nothing."""
    from runner.compile.plan import compile_plan
    from runner.config import to_container
    from runner.pipeline import load_spec, plan_numbers

    if "-m" in overrides or "--multirun" in overrides:
        return _plan_sweep(overrides)
    cfg = _compose(overrides)
    if print_cfg:
        from omegaconf import OmegaConf

        display.out.print(OmegaConf.to_yaml(to_container(cfg)), markup=False)
        return 0
    index = load_spec(cfg)
    compiled = compile_plan(index, cfg)
    numbers, _, _ = plan_numbers(cfg, compiled)
    if cfg.format.value == "json":
        display.emit_json(numbers)
        return 0
    from rich.table import Table

    table = Table(title=f"plan {numbers['run_id']}", title_justify="left", show_header=False)
    for key in (
        "model",
        "strategy",
        "target",
        "direction",
        "scenes",
        "elicitation",
        "variant",
        "judgments_per_action",
        "requests",
        "stored",
        "to_send",
        "est_prompt_tokens",
        "est_cost_usd",
    ):
        value = numbers[key]
        table.add_row(key.replace("_", " "), f"{value:,}" if isinstance(value, int) else f"{value}")
    display.out.print(table)
    if numbers["unpriced_models"]:
        display.warn(f"no price known for {', '.join(numbers['unpriced_models'])}: cost estimate excludes it")
    return 0


def _plan_sweep(argv: list[str]) -> int:
    from rich.table import Table

    from runner.sweep import plan_sweep

    result = plan_sweep(argv)
    if any(a == "format=json" for a in argv):
        display.emit_json(result)
        return 0
    table = Table(title=f"sweep plan: {result['total']['jobs']} jobs", title_justify="left")
    for col in ("job overrides", "requests", "stored", "to send", "est. tokens", "est. cost $"):
        table.add_column(col, justify="left" if col == "job overrides" else "right")
    for job in result["jobs"]:
        table.add_row(
            " ".join(job["overrides"]),
            f"{job['requests']:,}",
            f"{job['stored']:,}",
            *display.estimate_cells(job),
        )
    t = result["total"]
    table.add_row(
        "[bold]total (each key once)[/bold]",
        f"{t['requests']:,}",
        f"{t['stored']:,}",
        *display.estimate_cells(t),
        end_section=True,
    )
    display.out.print(table)
    return 0


def run(argv: list[str]) -> int:
    """``vat run``: a Hydra app (``-m`` sweeps, launchers, experiments); sends only what is missing."""
    from runner.sweep import run_hydra

    return run_hydra(argv)


# ---------------------------------------------------------------- report


def report(overrides: list[str]) -> int:
    """``vat report``: metrics of the runs in the store, filtered, as tables, JSON, CSV, Markdown or LaTeX."""
    rest, filters, fmt = _report_arguments(overrides)
    cfg = _compose(rest)
    return _report(cfg, filters, fmt)


def _report_arguments(overrides: list[str]) -> tuple[list[str], dict[str, list[str]], str | None]:
    """Split `vat report`'s own arguments off the Hydra overrides.

    ``target=``, ``strategy=`` and ``direction=`` filter the rows (comma lists allowed, e.g.
    ``target=security,power``), ``format=csv|markdown|latex`` picks a paper table; everything else
    (``report.model=``, ``format=json``, ``store.path=``) goes to Hydra.
    """
    from runner.report.tables import REPORT_FORMATS

    rest: list[str] = []
    filters: dict[str, list[str]] = {}
    fmt = None
    for o in overrides:
        key, sep, value = o.partition("=")
        if sep and key in ("target", "strategy", "direction"):
            filters[key] = [v for v in value.split(",") if v]
        elif sep and key == "format" and value not in ("table", "json"):
            if value not in REPORT_FORMATS:
                raise VatError(
                    f"format={value} is not a report format; use one of {', '.join(REPORT_FORMATS)}", 2
                )
            fmt = value
        else:
            rest.append(o)
    return rest, filters, fmt


def _report(cfg: DictConfig, filters: dict[str, list[str]] | None = None, fmt: str | None = None) -> int:
    from runner.api import report_rows
    from runner.report import tables as rep

    found = report_rows(cfg, filters)
    rows, every, models, values, filters = found.rows, found.every, found.models, found.values, found.filters
    fmt = fmt or cfg.format.value
    if fmt in ("results", "eee") and (rows or not models):
        return _results_document(cfg, found, eee=fmt == "eee")
    if not rows and not models:  # an empty store is not an error: there is nothing yet
        if fmt == "json":
            display.emit_json(rep.report_json([], [], filters))
        else:
            display.warn(rep.no_rows_message(str(cfg.store.path), cfg.report.model, filters, every, models))
        return 0
    if not rows:  # runs exist, but none matches what was asked: say what there is
        raise VatError(rep.no_rows_message(str(cfg.store.path), cfg.report.model, filters, every, models), 1)
    fams = rep.families(rows)
    if fmt == "json":
        from runner.metrics.row import to_json

        display.emit_json(to_json(rep.report_json(rows, fams, filters)))
        return 0
    if fmt != "table":
        import sys

        sys.stdout.write(rep.paper_tables(rows, fams, fmt))
        return 0
    rep.print_tables(rows, fams, values)
    for caveat in sorted({r["caveat"] for r in rows if r["caveat"]}):
        display.warn(caveat)
    if cfg.report.plots:
        written = rep.write_plots(rows, fams, values, Path(cfg.report.dir))
        display.note(f"wrote {len(written)} plots to {cfg.report.dir}/ (SVG; open them in any browser)")
    return 0


def _results_document(cfg: DictConfig, found: Any, eee: bool = False) -> int:
    """`vat report format=results`: the versioned document of runner.metrics.results_doc on stdout.

    With ``eee`` (``format=eee``) the document's Every Eval Ever records instead: a JSON list, one per model.
    """
    from runner.api import results_document
    from runner.metrics.row import to_json

    doc = to_json(results_document(cfg, found))
    if eee:
        from runner.report.eee import records

        display.emit_json(records(doc))
        return 0
    display.emit_json(doc)
    return 0


# ---------------------------------------------------------------- demo and export


def demo(overrides: list[str]) -> int:
    """``vat demo``: run the embedded model on a few scenes, print the report, write plots."""
    from runner.pipeline import execute_run, run_exit_code

    base = ["selection=demo", "report.plots=true"]
    cfg = _compose(base + overrides)
    display.note(
        f"VAT Bench demo: {cfg.model.name}, {cfg.strategy}, {cfg.target} {cfg.direction.value}, "
        f"{cfg.selection.max_scenes} test scenes"
    )
    start = time.perf_counter()
    compiled, stats = execute_run(cfg, base + overrides)
    display.note(
        f"{stats.answered} judgments in {stats.elapsed_s:.1f} s; {stats.planned - stats.to_send} were already stored"
    )
    code = _report(cfg)
    from runner.cli.leaderboard import build_from_config

    site = build_from_config(cfg, base + overrides)  # prints the path of index.html
    display.note(
        f"store: {cfg.store.path} · plots: {cfg.report.dir}/ · site: {site} · total {time.perf_counter() - start:.0f} s"
    )
    return run_exit_code(cfg, stats) or code


def validate_metrics(overrides: list[str]) -> int:
    """``vat validate-metrics``: simulated judges with planted values, planted vs measured (runner.validation.known_answer)."""
    from runner.cli.validation import validate_metrics as _validate_metrics

    return _validate_metrics(overrides)


def power(args: list[str]) -> int:
    """``vat power``: scenes needed for a gain or an nVAT difference (runner.validation.power)."""
    from runner.cli.power import power_command

    return power_command(args)


def export(spec_dir: str, output: str, fmt: str = "table") -> int:
    """``vat export``: the scene set as a Hub dataset folder (train/test, card), or one Parquet/JSONL file."""
    from runner.dataset.export import to_dataset, write
    from runner.spec.load import load_index

    index = load_index(spec_dir, check_lock=False)
    if not Path(output).suffix or Path(output).is_dir():  # a folder: the Hub layout; a file name: one file
        from runner.dataset.hf_export import write_folder

        done = write_folder(index, output)
        if fmt == "json":
            display.emit_json(done)
        else:
            display.note(
                f"wrote {done['path']}/: train {done['rows']['train']:,} actions of {done['scenes']['train']} scenes, "
                f"test {done['rows']['test']:,} of {done['scenes']['test']}, and README.md (dataset card)"
            )
        return 0
    ds = to_dataset(index)
    path = write(ds, output)
    if fmt == "json":
        display.emit_json({"path": str(path), "rows": len(ds)})
    else:
        display.note(f"wrote {len(ds):,} actions of {len(index.scenes)} scenes to {path}")
    return 0


# ---------------------------------------------------------------- generate and import (docs/dataset.md)


def _section_overrides(overrides: list[str], section: str, cls: type) -> list[str]:
    """Bare keys of a verb's own config section (``countries=[us]``) → ``<section>.countries=[us]``.

    A new key inside one of the section's mappings (``columns.country=Country``) gets Hydra's ``++``
    (add or override), since the composed config accepts no new keys otherwise.
    """
    from dataclasses import fields

    keys = {f.name for f in fields(cls)}
    mappings = {f.name for f in fields(cls) if f.default_factory is dict}
    out = []
    for o in overrides:
        prefix = o[: len(o) - len(o.lstrip("+~"))]
        body = o[len(prefix) :]
        path = body.split("=", 1)[0].split(".")
        if path[0] in keys:
            body, path = f"{section}.{body}", [section, *path]
        if not prefix and len(path) > 2 and path[0] == section and path[1] in mappings:
            prefix = "++"
        out.append(prefix + body)
    return out


def generate(stage: str, overrides: list[str]) -> int:
    """``vat generate scenes|actions``: write drafts for review; exit 3 when a scene could not be written."""
    from runner.config import GenerateConf
    from runner.dataset.generate import generate as run_generate

    overrides = _section_overrides(overrides, "generate", GenerateConf)
    cfg = _compose(overrides)
    summary = run_generate(cfg, stage)
    if cfg.format.value == "json":
        display.emit_json(summary)
    else:
        _print_generate_summary(summary)
    return 3 if summary["scenes_failed"] else 0


def _print_generate_summary(s: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"vat generate {s['stage']} → {s['out']}", title_justify="left", show_header=False)
    for key in ("model", "judge_model", "scenes_requested", "scenes_skipped_existing", "scenes_written"):
        table.add_row(key.replace("_", " "), str(s[key]))
    table.add_row("actions written", f"{s['actions_written']} of {s['actions_expected']}")
    table.add_row("failed items", str(s["failures"]))
    if s["mean_scores"]:
        table.add_row("mean judge scores", ", ".join(f"{k} {v}" for k, v in s["mean_scores"].items()))
    table.add_row("calls", f"{s['calls']} ({s['provider_attempts']} provider attempts)")
    table.add_row("cost", f"${s['cost_usd']:.4f}")
    table.add_row("elapsed", f"{s['elapsed_s']:.1f} s")
    display.out.print(table)
    for row in s["failures_by_reason"][:8]:
        display.warn(f"{row['count']} × {row['stage']}: {row['reason']}")
    if s["scenes_to_review"]:
        display.warn(f"{len(s['scenes_to_review'])} scene(s) carry review notes under generated.review")
    if s["scenes_skipped_existing"]:
        display.note(
            f"{s['scenes_skipped_existing']} output file(s) existed and were kept (overwrite=true redoes them)"
        )
    if s["files"]:
        display.note(
            f"wrote {len(s['files'])} file(s) and generation-report.json under {s['out']}/ — review them in a pull request"
        )


def import_dataset(overrides: list[str]) -> int:
    """``vat import``: dataset → scene YAML for review; exit 1 when no row could be imported."""
    from runner.config import ImportConf
    from runner.dataset.importer import import_dataset as run_import
    from runner.dataset.importer import importer_conf
    from runner.pipeline import load_spec

    overrides = _section_overrides(overrides, "importer", ImportConf)
    cfg = _compose(overrides)
    section = importer_conf(cfg, overrides)
    if _is_vat_export(section):  # our own dataset folder (or Hub id): read back as exported
        from runner.dataset.hf_export import import_folder

        summary = import_folder(section, load_spec(cfg))
        if cfg.format.value == "json":
            display.emit_json(summary)
        else:
            display.note(
                f"read {summary['rows']:,} rows of {summary['source']} ({summary['format']} export); wrote "
                f"{summary['scenes_written']} scenes under {summary['out']}/"
            )
        return 0 if summary["scenes_written"] else 1
    summary = run_import(cfg, overrides, load_spec(cfg))
    if cfg.format.value == "json":
        display.emit_json(summary)
    else:
        _print_import_summary(summary)
    return 0 if summary["scenes_written"] else 1


def _is_vat_export(section: Any) -> bool:
    """A `vat export` folder, or a Hub id given with no column mapping: read without a mapping."""
    from runner.dataset.hf_export import is_vat_folder

    source = str(section.source or "")
    if not source or section.columns:
        return False
    return is_vat_folder(source) if Path(source).exists() else True


def _print_import_summary(s: dict[str, Any]) -> None:
    display.out.print(
        f"imported [bold]{s['source']}[/bold]: {s['rows']:,} rows, {s['rows_mapped']:,} mapped, "
        f"{s['rows_unmapped']:,} not → {s['scenes_written']} scenes, {s['actions_written']:,} actions in {s['out']}/"
    )
    display.note(
        f"{s['elapsed_s']:.1f} s, {s['rows_per_s'] or 0:,.1f} rows/s, peak memory {s['peak_rss_mb'] or 0:,.0f} MiB"
        + (
            f"; object cells read: {', '.join(f'{n:,} {k}' for k, n in s['cells_parsed'].items())}"
            if s["cells_parsed"]
            else ""
        )
    )
    for u in s["unmapped"]:
        display.warn(f"{u['rows']} × {u['reason']}, e.g. {'; '.join(u['examples'])}")
    if s["unmapped_names_hint"]:
        display.error(s["unmapped_names_hint"])
    if s["placeholder_scenes"]:
        display.warn(
            f"{len(s['placeholder_scenes'])} placeholder scene(s) (the dataset has no scene text): "
            f"{', '.join(s['placeholder_scenes'][:5])}{' ...' if len(s['placeholder_scenes']) > 5 else ''}"
        )
    if s["incomplete_scenes"]:
        display.warn(f"{len(s['incomplete_scenes'])} scene(s) lack an action for some value and polarity")
    notes = sum(len(v) for v in s["scenes_to_review"].values())
    if notes:
        display.note(
            f"{notes} review note(s) in {len(s['scenes_to_review'])} scene(s); format=json lists them"
        )
