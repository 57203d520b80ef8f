"""The verbs ``vat bundle``, ``vat verify`` and ``vat leaderboard {run,plan,build,release-scenes,freeze}``.

Each takes ``key=value`` arguments: its own keys (``entry=``, ``release=``, ``out=``, ``replay=`` ...)
and, for everything else, Hydra overrides of the run config (``store.path=``, ``execution.*``,
``spec_dir=``), so the store and execution settings are spelled exactly as for ``vat run``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.core import display
from runner.core.errors import VatError

USAGE = {
    "bundle": "vat bundle entry=<entry id> [release=<release id>] [out=<folder or .tar.gz>] [store.path=...]",
    "verify": "vat verify <bundle folder or .tar.gz> [replay=N] [seed=0] [min_agreement=0.9]",
    "leaderboard": "vat leaderboard run|plan|build|release-scenes|freeze [key=value ...]",
}


def split_args(
    tokens: Sequence[str], own: set[str], verb: str
) -> tuple[list[str], dict[str, str], list[str]]:
    """(positionals, own key=value pairs, Hydra overrides) of a verb's arguments."""
    positionals, mine, overrides = [], {}, []
    for token in tokens:
        if token.startswith("-"):
            raise VatError(f"unknown option {token!r}; usage: {USAGE[verb]}", 2)
        key, sep, value = token.partition("=")
        if not sep:
            positionals.append(token)
        elif key in own:
            mine[key] = value
        else:
            overrides.append(token)
    return positionals, mine, overrides


def _int(mine: dict[str, str], key: str, default: int) -> int:
    try:
        return int(mine.get(key, default))
    except ValueError:
        raise VatError(f"{key}={mine[key]!r} is not a whole number", 2) from None


def _float(mine: dict[str, str], key: str, default: float) -> float:
    try:
        return float(mine.get(key, default))
    except ValueError:
        raise VatError(f"{key}={mine[key]!r} is not a number", 2) from None


def _entry_and_release(mine: dict[str, str], verb: str) -> tuple[Any, Any]:
    from runner.spec.entries import get_entry, get_release, latest_release

    if not mine.get("entry"):
        raise VatError(f"give the entry: {USAGE.get(verb, 'entry=<entry id>')}", 2)
    entry = get_entry(mine["entry"])
    release = get_release(mine["release"]) if mine.get("release") else latest_release()
    return entry, release


# ---------------------------------------------------------------- vat bundle


def bundle(tokens: Sequence[str], fmt: str = "table") -> int:
    """``vat bundle``: pack one entry's judgments of one release into a submission bundle."""
    from runner.leaderboard.bundle import compile_release, write_bundle
    from runner.store.store import open_store

    positionals, mine, overrides = split_args(tokens, {"entry", "release", "out"}, "bundle")
    if positionals:
        raise VatError(f"unexpected argument {positionals[0]!r}; usage: {USAGE['bundle']}", 2)
    entry, release = _entry_and_release(mine, "bundle")
    rp = compile_release(entry, release, overrides)
    out = Path(mine.get("out") or f"results/bundles/{entry.id}__{release.id}")
    with open_store(rp.cfg.store.path, read_only=True) as store:
        path = write_bundle(store, rp, out)
    manifest = _manifest_of(path)
    summary = {
        "bundle": str(path),
        "entry": entry.id,
        "release": release.id,
        "conditions": len(rp.conditions),
        "judgments": manifest["judgments"]["rows"],
        "request_keys": len(manifest["request_keys"]),
        "judgments_sha256": manifest["judgments"]["sha256"],
        "bytes": _size(path),
    }
    if fmt == "json":
        display.emit_json(summary)
    else:
        display.out.print(
            f"bundle [bold]{display.escape(str(path))}[/bold]: {summary['conditions']} conditions, "
            f"{summary['judgments']:,} judgments, {summary['request_keys']:,} request keys, {summary['bytes']:,} bytes"
        )
        display.note(f"check it with `vat verify {path}`; submit it as described in CONTRIBUTING.md")
        if path.is_dir():
            display.note(f"publish it on the Hub: `hf upload <org>/<name> {path} --repo-type dataset`")
    return 0


def _manifest_of(path: Path) -> dict[str, Any]:
    from runner.leaderboard.bundle import open_bundle, read_manifest

    with open_bundle(path) as folder:
        return read_manifest(folder)


def _size(path: Path) -> int:
    return (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else path.stat().st_size
    )


# ---------------------------------------------------------------- vat verify


def verify(tokens: Sequence[str], fmt: str = "table") -> int:
    """``vat verify``: recompute and check a bundle; ``replay=N`` also asks the provider again. Exit 1 on failure."""
    from runner.leaderboard.bundle import (
        HMAC_ENV,
        open_bundle,
        replay,
        signing_key,
        verify_folder,
        write_sidecar,
    )

    positionals, mine, overrides = split_args(tokens, {"replay", "seed", "min_agreement"}, "verify")
    if len(positionals) != 1:
        raise VatError(f"give one bundle; usage: {USAGE['verify']}", 2)
    path = Path(positionals[0])
    n_replay, seed = _int(mine, "replay", 0), _int(mine, "seed", 0)
    min_agreement = _float(mine, "min_agreement", 0.9)
    if fmt == "json":
        overrides = [*overrides, "format=json"]
    start = time.perf_counter()
    with open_bundle(path) as folder:
        verdict, rp, table = verify_folder(folder, path, overrides)
        if n_replay > 0 and verdict.ok and rp is not None and table is not None:
            verdict.replay = replay(rp, table, n_replay, seed, min_agreement)
            verdict.add(
                "replay",
                [] if verdict.replay["passed"] else [_replay_problem(verdict.replay)],
                f"{verdict.replay['agreed']}/{verdict.replay['requested']} replayed ratings agree "
                f"(≥ {min_agreement:.0%} needed)",
            )
    sidecar = write_sidecar(path, verdict) if n_replay > 0 else None
    _print_verdict(verdict, fmt, time.perf_counter() - start, sidecar)
    if sidecar is not None and signing_key() is None:
        display.warn(
            f"{HMAC_ENV} is not set: the record is unsigned, so the site shows this bundle as checked, "
            "not verified (only the maintainer's signed record counts)"
        )
    return 0 if verdict.ok else 1


def _replay_problem(r: dict[str, Any]) -> str:
    if r["answered"] < r["requested"]:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(r.get("errors_by_kind", {}).items()))
        why = r.get("stopped") or (f"failed attempts: {kinds}" if kinds else None)
        return f"only {r['answered']} of {r['requested']} replayed requests were answered" + (
            f": {why}" if why else ""
        )
    first = r["mismatches"][0] if r["mismatches"] else {}
    return (
        f"{r['agreed']}/{r['requested']} replayed ratings agree, below {r['min_agreement']:.0%} "
        f"(e.g. key {first.get('request_key')}: stored {first.get('stored')}, replayed {first.get('replayed')})"
    )


def _print_verdict(verdict: Any, fmt: str, elapsed: float, sidecar: Path | None) -> None:
    if fmt == "json":
        display.emit_json(
            {
                "bundle": verdict.bundle,
                "ok": verdict.ok,
                "verified": verdict.ok and bool(verdict.replay and verdict.replay["passed"]),
                "reasons": verdict.reasons,
                "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in verdict.checks],
                "replay": verdict.replay,
                "sidecar": str(sidecar) if sidecar else None,
                "bundle_format": verdict.bundle_format,
                "migrations": verdict.migrations,
                "elapsed_s": round(elapsed, 2),
            }
        )
        return
    from rich.table import Table

    table = Table(title=f"verify {display.escape(verdict.bundle)}", title_justify="left")
    table.add_column("check")
    table.add_column("")
    table.add_column("detail", overflow="fold")
    for c in verdict.checks:
        table.add_row(
            c.name,
            "[green]pass[/green]" if c.passed else "[bold red]FAIL[/bold red]",
            display.escape(c.detail),
        )
    display.out.print(table)
    if verdict.migrations:
        display.note(
            f"a format-{verdict.bundle_format} bundle, read through the migration(s) {', '.join(verdict.migrations)}"
        )
    if verdict.ok:
        state = "verified" if verdict.replay else "passed (run with replay=N to earn the verified badge)"
        display.note(
            f"bundle {state} in {elapsed:.1f} s" + (f"; record written to {sidecar}" if sidecar else "")
        )
    else:
        display.error(f"bundle FAILED verification: {len(verdict.reasons)} check(s) failed")


# ---------------------------------------------------------------- vat leaderboard


def leaderboard(tokens: Sequence[str], fmt: str = "table") -> int:
    """``vat leaderboard <run|plan|build|release-scenes>``."""
    if not tokens or "=" in tokens[0]:
        raise VatError(f"give a subcommand; usage: {USAGE['leaderboard']}", 2)
    sub, rest = tokens[0], list(tokens[1:])
    handlers = {
        "run": run_release,
        "plan": plan_release,
        "build": build,
        "release-scenes": release_scenes,
        "freeze": freeze_release,
    }
    if sub not in handlers:
        raise VatError(f"unknown subcommand {sub!r}; usage: {USAGE['leaderboard']}", 2)
    return handlers[sub](rest, fmt)


def run_release(tokens: Sequence[str], fmt: str = "table") -> int:
    """``vat leaderboard run entry=<id> [release=<r>]``: judge every condition of a release (resumable)."""
    from runner.leaderboard.bundle import compile_release, condition_config
    from runner.pipeline import batch_together, execute_run, pooled_problem
    from runner.report.tables import model_caveat

    positionals, mine, overrides = split_args(tokens, {"entry", "release"}, "leaderboard")
    if positionals:
        raise VatError(
            f"unexpected argument {positionals[0]!r}; usage: vat leaderboard run entry=<id> [release=<r>]", 2
        )
    entry, release = _entry_and_release(mine, "leaderboard")
    if fmt == "json":
        overrides = [*overrides, "format=json"]
    rp = compile_release(entry, release, overrides)
    totals = {"conditions": len(rp.conditions), "sent": 0, "answered": 0, "failed": 0, "elapsed_s": 0.0}
    if str(rp.cfg.execution.mode) == "batch":  # one batch window for the release, not one per condition
        pooled = batch_together(
            [(condition_config(rp.cfg, c.strategy, c.target, c.direction), c.plan) for c in rp.conditions],
            f"conditions of release {release.id}",
        )
        totals.update(
            sent=pooled.to_send,
            answered=pooled.answered,
            failed=pooled.failed,
            elapsed_s=round(pooled.elapsed_s, 2),
        )
        problem = pooled_problem(pooled)
        if problem:
            raise VatError(f"{problem}; no condition was recorded", 3)
    for i, c in enumerate(rp.conditions, 1):
        display.note(f"[{i}/{len(rp.conditions)}] {entry.id} · {c.strategy} · {c.target} {c.direction}")
        cfg = condition_config(rp.cfg, c.strategy, c.target, c.direction)
        _, stats = execute_run(cfg, [f"model={entry.id}", f"release={release.id}", *overrides])
        totals["sent"] += stats.to_send
        totals["answered"] += stats.answered
        totals["failed"] += stats.failed
        totals["elapsed_s"] = round(totals["elapsed_s"] + stats.elapsed_s, 2)
        if stats.stopped:
            raise VatError(f"run stopped ({stats.stopped}); run the same command again to resume", 3)
    if fmt == "json":
        display.emit_json({"entry": entry.id, "release": release.id, "store": rp.cfg.store.path, **totals})
    else:
        display.out.print(
            f"release {release.id} for {entry.id}: {totals['conditions']} conditions, {totals['sent']:,} sent, "
            f"{totals['answered']:,} answered, {totals['failed']} failed, {totals['elapsed_s']:.1f} s"
        )
        display.note(
            f"next: `vat bundle entry={entry.id} release={release.id} store.path={rp.cfg.store.path}`"
        )
    caveat = model_caveat(entry.model)
    if caveat:
        display.warn(caveat)
    return 3 if totals["failed"] else 0


def plan_release(tokens: Sequence[str], fmt: str = "table") -> int:
    """``vat leaderboard plan entry=<id> [release=<r>] [strategy=<s>] [target=<t>]``: price a release; sends nothing.

    Every condition (strategy × target × direction) is compiled as `vat leaderboard run` would run it;
    the total counts each request key once, so the pre condition the conditions share is paid once.
    ``strategy=`` and ``target=`` keep only the matching conditions (the cost of one condition).
    """
    from runner.leaderboard.bundle import compile_release
    from runner.pipeline import estimate, plan_numbers

    positionals, mine, overrides = split_args(
        tokens, {"entry", "release", "strategy", "target"}, "leaderboard"
    )
    if positionals:
        raise VatError(f"unexpected argument {positionals[0]!r}; usage: {PLAN_USAGE}", 2)
    entry, release = _entry_and_release(mine, "leaderboard")
    rp = compile_release(entry, release, overrides)
    conditions = [
        c
        for c in rp.conditions
        if mine.get("strategy") in (None, c.strategy) and mine.get("target") in (None, c.target)
    ]
    if not conditions:
        raise VatError(
            f"no condition of release {release.id} matches strategy={mine.get('strategy')} "
            f"target={mine.get('target')}; its strategies: {', '.join(release.strategy_ids)}; "
            f"its targets: {', '.join(c.target for c in release.targets)}",
            2,
        )
    rows, todo_all, keys, stored, pre = [], {}, set(), set(), set()
    for c in conditions:
        numbers, todo, stored_keys = plan_numbers(rp.cfg, c.plan)
        rows.append(numbers)
        keys.update(c.plan.keys())
        stored.update(stored_keys)
        pre.update(r.key for r in c.plan.requests if r.condition == "pre")
        for r in todo:
            todo_all.setdefault(r.key, r)
    total = {
        "conditions": len(rows),
        "scenes": len(release.scenes),
        "requests": len(keys),
        "shared_pre": len(pre),
        "stored": len(stored),
        "to_send": len(todo_all),
        **estimate(list(todo_all.values()), int(rp.cfg.model.max_tokens)),
    }
    if fmt == "json":
        display.emit_json({"entry": entry.id, "release": release.id, "conditions": rows, "total": total})
        return 0
    _print_release_plan(entry.id, release.id, rows, total)
    return 0


PLAN_USAGE = "vat leaderboard plan entry=<id> [release=<r>] [strategy=<s>] [target=<t>]"


def _print_release_plan(entry: str, release: str, rows: list[dict[str, Any]], total: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"plan of release {release} for {entry}", title_justify="left")
    for col in (
        "strategy",
        "target",
        "direction",
        "scenes",
        "requests",
        "to send",
        "est. tokens",
        "est. cost $",
    ):
        table.add_column(col, justify="left" if col in ("strategy", "target", "direction") else "right")
    for r in rows:
        table.add_row(
            r["strategy"],
            r["target"],
            r["direction"],
            str(r["scenes"]),
            f"{r['requests']:,}",
            *display.estimate_cells(r),
        )
    table.add_row(
        f"[bold]total, each key once ({total['shared_pre']:,} pre requests shared)[/bold]",
        "",
        "",
        str(total["scenes"]),
        f"{total['requests']:,}",
        *display.estimate_cells(total),
        end_section=True,
    )
    display.out.print(table)
    if total["unpriced_models"]:
        display.warn(
            f"no price known for {', '.join(total['unpriced_models'])}: the cost estimate excludes it"
        )
    display.note(
        f"nothing was sent; `vat leaderboard run entry={entry} release={release}` sends what is missing"
    )


def release_scenes(tokens: Sequence[str], fmt: str = "table") -> int:
    """``vat leaderboard release-scenes [split=test]``: the pins a new release would list.

    Prints a YAML block to paste into ``leaderboard/releases/<r>.yaml``: the value system, the prompt,
    every scene of ``split``, every train scene (the demonstrations' pool) and every strategy a release
    can score, each as ``id@version``.
    """
    from runner.spec.entries import release_pins
    from runner.spec.load import DEFAULT_PROMPT, DEFAULT_VALUE_SYSTEM, load_index

    _, mine, overrides = split_args(tokens, {"split", "spec_dir"}, "leaderboard")
    if overrides:
        raise VatError(f"unknown key(s): {', '.join(overrides)}; use split= and spec_dir=", 2)
    index = load_index(mine.get("spec_dir", "spec"), check_lock=False)

    def tag(kind: str, ident: str) -> str:
        return f"{ident}@{index.hashes[f'{kind}/{ident}'][0]}"

    pins = {
        "value_system": tag("values", DEFAULT_VALUE_SYSTEM),
        "prompt": tag("prompts", DEFAULT_PROMPT),
        "scenes": release_pins(index, mine.get("split", "test")),
        "train_scenes": release_pins(index, "train"),
        "strategies": [
            tag("strategies", s.id)
            for s in index.strategies.values()
            if s.kind.value not in ("baseline", "checkpoint")
        ],
    }
    if fmt == "json":
        display.emit_json(pins)
        return 0
    lines = [f"value_system: {pins['value_system']}", f"prompt: {pins['prompt']}"]
    for key in ("scenes", "train_scenes", "strategies"):
        lines += [f"{key}:", *(f"  - {p}" for p in pins[key])]
    display.out.print("\n".join(lines), markup=False, highlight=False)
    return 0


def freeze_release(tokens: Sequence[str], fmt: str = "table") -> int:
    """``vat leaderboard freeze release=<r> [spec_dir=spec]``: copy what a release pins into its snapshot.

    After this, ``leaderboard/releases/<r>/spec/`` is what the release is checked, compiled and verified
    against, so later versions of its scenes in ``spec/`` never invalidate its submissions.
    """
    from runner.spec.entries import freeze, get_release

    _, mine, overrides = split_args(tokens, {"release", "spec_dir"}, "leaderboard")
    if overrides or "release" not in mine:
        raise VatError("usage: vat leaderboard freeze release=<id> [spec_dir=spec]", 2)
    release = get_release(mine["release"])
    try:
        snap, count = freeze(release, Path(mine.get("spec_dir", "spec")))
    except ValueError as exc:
        raise VatError(str(exc), 1) from exc
    if fmt == "json":
        display.emit_json({"release": release.id, "snapshot": str(snap), "files": count})
    else:
        shown = snap.relative_to(Path.cwd()) if snap.is_relative_to(Path.cwd()) else snap
        display.out.print(f"froze {release.id}: {count} file(s) in {shown}", markup=False, highlight=False)
    return 0


def build(tokens: Sequence[str], fmt: str = "table") -> int:
    """``vat leaderboard build [out=results/site] [release=<r>] [submissions=<folder>] [store=true]``."""
    positionals, mine, overrides = split_args(
        tokens, {"out", "release", "submissions", "store"}, "leaderboard"
    )
    if positionals:
        raise VatError(f"unexpected argument {positionals[0]!r}; usage: vat leaderboard build [out=...]", 2)
    from runner.config import compose

    cfg = compose(overrides)
    index_html = build_from_config(
        cfg,
        overrides,
        out=Path(mine["out"]) if mine.get("out") else None,
        release_id=mine.get("release"),
        submissions=Path(mine["submissions"]) if mine.get("submissions") else None,
        include_store=mine.get("store", "true").lower() not in ("false", "0", "no"),
        fmt=fmt,
    )
    if fmt == "json":
        display.emit_json({"index": str(index_html), "site": str(index_html.parent)})
    return 0


def build_from_config(
    cfg: Any,
    overrides: Sequence[str] = (),
    out: Path | None = None,
    release_id: str | None = None,
    submissions: Path | None = None,
    include_store: bool = True,
    fmt: str = "table",
) -> Path:
    """Build the site for ``cfg`` (store, metrics, spec_dir); default out is ``<store folder>/site``. Returns index.html."""
    from runner.core.paths import leaderboard_dir
    from runner.leaderboard.site import build_site, collect, report_skipped
    from runner.spec.entries import get_release, latest_release

    release = get_release(release_id) if release_id else latest_release()
    out = out or Path(cfg.store.path).parent / "site"
    params = {k: v for k, v in dict(cfg.metrics).items()}
    params.update(release.metrics)
    start = time.perf_counter()
    data = collect(
        release,
        submissions or leaderboard_dir() / "submissions",
        Path(cfg.store.path) if include_store else None,
        params,
        overrides,
        spec_dir=str(cfg.spec_dir),
    )
    report_skipped(data)
    n_bundles = len({r.get("bundle") for r in data.rows if r["source"] == "bundle"})
    if data.skipped and not n_bundles:
        # A board that silently lost every submission looks like an empty release: refuse to publish it.
        raise VatError(
            f"every bundle was left out of the site ({len(data.skipped)} failed verification; first: "
            f"{data.skipped[0]}); fix or remove them, or check that spec/ and leaderboard/ are the release's",
            1,
        )
    index_html = build_site(data, out)
    if fmt != "json":
        display.note(
            f"site: {len(data.rows)} rows from {n_bundles} bundle(s) and the store, {len(data.entries)} entries, "
            f"built in {time.perf_counter() - start:.1f} s"
        )
        display.out.print(
            f"leaderboard site: {index_html.resolve()}", markup=False, highlight=False, soft_wrap=True
        )
    return index_html
