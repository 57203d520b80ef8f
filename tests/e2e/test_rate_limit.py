"""``execution.requests_per_minute`` against a real server: a run never sends faster than the ceiling."""

from __future__ import annotations

import json

import pytest
from support.fault_server import run_args, store_check

pytestmark = [pytest.mark.usefixtures("fake_key"), pytest.mark.slow]


def test_a_run_keeps_to_its_requests_per_minute(vat, server, tmp_path):
    store = tmp_path / "v.duckdb"
    result = vat(*run_args(server, store, "selection.max_scenes=1", "execution.requests_per_minute=1200"))
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    n = summary["requests"]
    assert store_check(store)["responses"] == summary["answered"] == n == server.stats()["requests"]
    # 20 a second: the last of n requests leaves (n - 1) / 20 s after the first, at the earliest.
    assert summary["elapsed_s"] >= (n - 1) / 20 * 0.95
