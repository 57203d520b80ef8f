"""Every elicitation option end to end (docs/elicitation.md): the simulated judge, a local
OpenAI-compatible server (tests/support/fault_server.py, no faults) and the embedded model (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from support.fault_server import FAKE_KEY, FaultPlan, FaultServer, run_args, store_check

OPTIONS = {
    "value": ("elicitation=value",),
    "micro_value": ("elicitation=micro_value",),
    "value_reversed": ("elicitation=value", "elicitation.variant=reversed"),
    "micro_para1": ("elicitation=micro_value", "elicitation.variant=para1"),
    "action_reversed": ("prompt=judgment_controls", "elicitation.variant=reversed"),
    "action_para2": ("prompt=judgment_controls", "elicitation.variant=para2"),
}
"""One scene: 20 actions × 10 asked values (or the scene's 10 micro-values) × pre and post."""


def _rows(store: Path) -> list[tuple]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute(
            "SELECT q.asked_value, q.asked_micro_value, q.variant, q.scale_reversed, r.rating, r.text "
            "FROM run_requests rr JOIN requests q USING (request_key) LEFT JOIN responses r USING (request_key)"
        ).fetchall()
    finally:
        con.close()


def _check_store(store: Path, overrides: tuple[str, ...], n: int) -> list[tuple]:
    rows = _rows(store)
    assert len(rows) == n
    names_value = any(o.startswith("elicitation=") for o in overrides)
    variant = next((o.split("=")[1] for o in overrides if o.startswith("elicitation.variant=")), "base")
    for asked, micro, got_variant, reversed_scale, _, _ in rows:
        assert (asked is not None) == names_value
        assert (micro is not None) == ("elicitation=micro_value" in overrides)
        assert got_variant == variant and reversed_scale == (variant == "reversed")
    return rows


FAST = ("value_reversed", "micro_para1", "action_reversed")
"""Run by default; the other options (same code paths, other wordings) under ``-m slow``."""


def _options(fast: tuple[str, ...]) -> list:
    return [o if o in fast else pytest.param(o, marks=pytest.mark.slow) for o in sorted(OPTIONS)]


@pytest.mark.parametrize("option", _options(FAST))
def test_each_option_runs_on_the_simulated_judge(vat, tmp_path: Path, option: str) -> None:
    overrides = OPTIONS[option]
    store = tmp_path / "vat.duckdb"
    res = vat(
        "run",
        "model.name=sim/circle",
        f"store.path={store}",
        "selection.max_scenes=1",
        "execution.progress=false",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        "format=json",
        *overrides,
    )
    assert res.code == 0, res.err
    out = json.loads(res.out)
    n = 40 if option.startswith("action") else 400
    assert out["answered"] == out["requests"] == n and out["failed"] == 0
    rows = _check_store(store, overrides, n)
    assert all(r[4] in (1, 2, 3, 4, 5) for r in rows)  # every sim answer parses, stored as shown


@pytest.mark.slow  # heavy (whole runs, servers or worker processes): make test-slow and CI run it
@pytest.mark.parametrize("option", _options(("micro_value", "value_reversed")))
def test_each_option_runs_against_a_local_openai_compatible_server(
    vat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    overrides = OPTIONS[option]
    store = tmp_path / "vat.duckdb"
    with FaultServer(FaultPlan()) as srv:
        res = vat(*run_args(srv, store, "selection.max_scenes=1", "execution.backoff_s=0.01", *overrides))
        assert res.code == 0, res.err
        n = 40 if option.startswith("action") else 400
        assert json.loads(res.out)["answered"] == n
        assert set(srv.stats()["per_prompt"].values()) == {1}  # each request sent once
    _check_store(store, overrides, n)
    assert store_check(store)["responses"] == n  # the digit stored is the server's, as given


@pytest.mark.slow
@pytest.mark.parametrize("option", ["value", "micro_value", "value_reversed", "action_reversed"])
def test_each_option_runs_on_the_embedded_model(vat, tmp_path: Path, option: str) -> None:
    """SmolLM2-135M on one scene, baseline strategy (pre and post share keys): every request answered."""
    overrides = OPTIONS[option]
    store = tmp_path / "vat.duckdb"
    res = vat(
        "run",
        "model=smollm2",
        f"store.path={store}",
        "selection.max_scenes=1",
        "strategy=baseline",
        "execution.progress=false",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        "format=json",
        *overrides,
    )
    assert res.code in (0, 3), res.err  # 3: some answers unparseable, which a 135M model gives
    out = json.loads(res.out)
    n = 40 if option.startswith("action") else 400
    assert out["requests"] == n // 2 and out["failed"] == 0  # baseline: post asks pre's questions
    rows = _check_store(store, overrides, n)
    assert all(r[5] is not None for r in rows)  # every request has a stored answer
