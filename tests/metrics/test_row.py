"""The typed report row (runner.metrics.row) is the schema's row and what the code really produces."""

import numpy as np

from runner.metrics import results_doc
from runner.metrics.row import ReportRow, VatMetrics, row_keys
from runner.metrics.vat import vat_metrics

VALUES = ["a", "b", "c", "d"]


def test_the_report_row_type_has_exactly_the_schema_row_fields():
    schema = results_doc.schema()["$defs"]["row"]
    assert set(row_keys(ReportRow)) == set(schema["properties"]), set(row_keys(ReportRow)) ^ set(
        schema["properties"]
    )
    assert set(schema["required"]) == set(schema["properties"])  # every field is always present


def test_vat_metrics_returns_exactly_the_typed_metric_fields():
    rng = np.random.default_rng(0)
    pre, post = rng.normal(size=(12, 4)), rng.normal(size=(12, 4))
    row = vat_metrics(pre, post, VALUES, "a", "reinforce", bootstrap_b=20, null_b=20, stability_b=5)
    assert list(row) == row_keys(VatMetrics)


def test_a_report_row_adds_only_identity_and_provenance_to_the_metrics():
    added = set(row_keys(ReportRow)) - set(row_keys(VatMetrics))
    assert {"run_id", "model", "strategy", "coverage", "micro_consistency"} <= added
    assert not added & set(row_keys(VatMetrics))
