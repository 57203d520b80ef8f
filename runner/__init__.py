"""VAT Bench: the Value Alignment Tax benchmark.

The package is one module per pipeline stage (see DESIGN.md):
``load`` (spec YAML → index), ``compile`` (index × config → plan), ``execute`` (plan → responses via
LiteLLM), ``store`` (DuckDB), ``states``/``metrics`` (judgments → VAT numbers), ``report`` and
``leaderboard`` (people-facing output). ``cli`` wires them into the ``vat`` command.
"""

__version__ = "0.1.0"
