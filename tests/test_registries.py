"""Registries refuse a second owner for one name: strategy kinds and provider prefixes (and entry points)."""

from __future__ import annotations

import importlib.metadata

import pytest

from runner.compile import strategies
from runner.execute import providers


def test_a_second_function_for_a_strategy_kind_is_refused() -> None:
    with pytest.raises(ValueError, match=r"strategy kind 'fewshot' is already registered by runner\.compile"):

        @strategies.register("fewshot")
        def another_fewshot(strategy, ctx):  # pragma: no cover - never called
            raise AssertionError

    assert strategies._REGISTRY["fewshot"].__name__ != "another_fewshot"


def test_registering_the_same_function_twice_is_harmless() -> None:
    fn = strategies._REGISTRY["baseline"]
    assert strategies.register("baseline")(fn) is fn


def test_a_taken_provider_prefix_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers, "PROVIDER_MODULES", dict(providers.PROVIDER_MODULES))
    providers.add_provider("sim", "runner.execute.providers.sim")  # the same owner again: fine
    with pytest.raises(
        ValueError, match="provider prefix 'sim' is already served by runner.execute.providers.sim"
    ):
        providers.add_provider("sim", "someone_else.sim")
    providers.add_provider("acme", "acme_vat.provider")
    assert providers.PROVIDER_MODULES["acme"] == "acme_vat.provider"


def test_entry_points_add_providers_and_a_clash_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers, "PROVIDER_MODULES", dict(providers.PROVIDER_MODULES))
    monkeypatch.setattr(providers, "_discovered", [])
    points = [importlib.metadata.EntryPoint("acme", "acme_vat.provider", providers.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        lambda group: points if group == providers.ENTRY_POINT_GROUP else [],
    )
    providers.discover()
    assert providers.PROVIDER_MODULES["acme"] == "acme_vat.provider"
    points.append(importlib.metadata.EntryPoint("local", "acme_vat.local", providers.ENTRY_POINT_GROUP))
    monkeypatch.setattr(providers, "_discovered", [])
    with pytest.raises(ValueError, match="provider prefix 'local' is already served"):
        providers.discover()
