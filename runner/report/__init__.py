"""For people: report tables and plots over the metrics."""
