"""Checks of the metrics themselves: known-answer validation, bias checks, power analysis."""
