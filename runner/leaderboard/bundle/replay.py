"""Replay: re-asking the provider a stratified random sample of a bundle's requests, and its detection power."""

from __future__ import annotations

import math
import random
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from runner.leaderboard.bundle.release import ReleasePlan


def replay(
    rp: ReleasePlan, table: pa.Table, n: int, seed: int = 0, min_agreement: float = 0.9
) -> dict[str, Any]:
    """Re-send ``n`` random requests of the bundle through runner.execute.online and compare the ratings.

    A replayed judgment agrees when its parsed rating equals the stored one (both unparseable also
    agrees). The replay passes when the share that agrees is at least ``min_agreement`` and every
    request got an answer.
    """
    from runner.execute.dispatch import execute
    from runner.pipeline import exec_options
    from runner.store.store import open_store

    stored = {
        k: (r, e)
        for k, r, e in zip(
            *(table.column(c).to_pylist() for c in ("request_key", "rating", "expected_rating")), strict=True
        )
    }
    sample = replay_sample(rp, n, seed)
    chosen = [k for keys in sample.values() for k in keys]
    by_key = rp.requests_by_key()
    requests = [by_key[k] for k in chosen]
    opts = exec_options(rp.cfg)  # the same options a `vat run` of this config would use
    with (
        tempfile.TemporaryDirectory(prefix="vat-replay-") as tmp,
        open_store(Path(tmp) / "replay.duckdb") as store,
    ):
        stats = execute(requests, store, opts)
        got = dict(store.query("SELECT request_key, rating FROM responses"))
    mismatches = [
        {"request_key": k, "stored": stored[k][0], "replayed": got.get(k)}
        for k in chosen
        if got.get(k, "absent") != stored[k][0]
    ]
    answered = sum(1 for k in chosen if k in got)
    agreed = len(chosen) - len(mismatches)
    agreement = agreed / len(chosen) if chosen else 0.0
    wrong = {m["request_key"] for m in mismatches}
    strata = {
        name: {
            "drawn": len(keys),
            "agreed": sum(1 for k in keys if k not in wrong),
            "allowed_mismatches": allowed_mismatches(len(keys), min_agreement),
        }
        for name, keys in sample.items()
    }
    strata_ok = all(v["drawn"] - v["agreed"] <= v["allowed_mismatches"] for v in strata.values())
    return {
        "requested": len(chosen),
        "answered": answered,
        "agreed": agreed,
        "agreement": round(agreement, 6),
        "min_agreement": min_agreement,
        "strata": strata,
        "seed": seed,
        "model": rp.entry.model,
        "passed": bool(chosen) and answered == len(chosen) and agreement >= min_agreement and strata_ok,
        "failed_requests": stats.failed,
        "stopped": stats.stopped,  # why the replay ended early (endpoint unreachable, no key, ...), or None
        "errors_by_kind": stats.error_kinds,
        "mismatches": mismatches[:50],
        "replayed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


STRATA = ("target-post", "target-pre", "other-post", "other-pre")
"""Replay strata: a judgment of the run's target value or another, in the post or the pre condition."""
TARGET_SHARE = 0.5
"""Share of the replay draws given to the target-value strata (the rows that drive the gain)."""


def strata(rp: ReleasePlan) -> dict[str, list[str]]:
    """Every request key of the release by replay stratum (a key of the target value in any run is a target key)."""
    target_keys = {r.key for c in rp.conditions for r in c.plan.requests if r.value == c.target}
    out: dict[str, set[str]] = {s: set() for s in STRATA}
    for c in rp.conditions:
        for r in c.plan.requests:
            out[f"{'target' if r.key in target_keys else 'other'}-{r.condition}"].add(r.key)
    return {s: sorted(keys) for s, keys in out.items()}


def allocate(n: int, sizes: dict[str, int], target_share: float = TARGET_SHARE) -> dict[str, int]:
    """Draws per stratum: ``target_share`` of ``n`` to the target strata, the rest to the others.

    Within each group the draws are split evenly; what a small stratum cannot take goes to the others
    in its group, then to the other group, so exactly ``min(n, total)`` keys are drawn.
    """
    n = min(n, sum(sizes.values()))
    out = {s: 0 for s in sizes}
    target = [s for s in sizes if s.startswith("target")]
    other = [s for s in sizes if s not in target]
    left = _fill(out, sizes, target, math.ceil(n * target_share))
    left = _fill(out, sizes, other, n - math.ceil(n * target_share) + left)
    _fill(out, sizes, target + other, left)
    return out


def _fill(out: dict[str, int], sizes: dict[str, int], names: list[str], budget: int) -> int:
    """Add up to ``budget`` draws over ``names`` evenly, within each stratum's size; return what is left."""
    while budget > 0:
        room = [s for s in names if out[s] < sizes[s]]
        if not room:
            break
        share = max(1, budget // len(room))
        for s in room:
            take = min(share, sizes[s] - out[s], budget)
            out[s] += take
            budget -= take
            if budget == 0:
                break
    return budget


def replay_sample(rp: ReleasePlan, n: int, seed: int = 0) -> dict[str, list[str]]:
    """The keys to replay, by stratum: :func:`allocate` draws from each, uniformly at random (seeded)."""
    by_stratum = strata(rp)
    counts = allocate(n, {s: len(k) for s, k in by_stratum.items()})
    rng = random.Random(seed)
    return {s: rng.sample(by_stratum[s], counts[s]) for s in STRATA if counts[s]}


def allowed_mismatches(drawn: int, min_agreement: float) -> int:
    """Mismatches a stratum of ``drawn`` replays may have and still pass (provider non-determinism)."""
    return math.floor((1.0 - min_agreement) * drawn + 1e-9)


def detection_power(size: int, forged: int, drawn: int, allowed: int) -> float:
    """P(a stratum of ``size`` keys with ``forged`` forged ones fails when ``drawn`` are replayed).

    The number of forged keys among the draws is hypergeometric; the stratum fails when it exceeds
    ``allowed`` (assuming the provider reproduces every honest answer).
    """
    total = math.comb(size, drawn)
    passes = sum(
        math.comb(forged, x) * math.comb(size - forged, drawn - x) for x in range(0, min(allowed, forged) + 1)
    )
    return 1.0 - passes / total
