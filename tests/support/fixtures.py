"""Fixtures shared by the end-to-end tests (registered in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.fault_server import FAKE_KEY, FaultServer


@pytest.fixture
def server() -> Iterator[FaultServer]:
    """A fault-injecting OpenAI-compatible server in its own process (no faults unless a test plans them)."""
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def fake_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """``OPENAI_API_KEY`` set to the fault server's fake key (a test that leaks it into the store fails)."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    return FAKE_KEY
