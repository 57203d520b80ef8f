"""Helpers shared by the tests (and benchmarks): fake servers, fixtures, the layering checker."""
