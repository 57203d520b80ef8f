"""Peer tools of benchmarks/bench_throughput.py: their hashed lock files and the task files they run."""
