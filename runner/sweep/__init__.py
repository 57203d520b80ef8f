"""Sweeps: ``vat run -m`` as a Hydra multirun that holds on one machine and on a cluster.

``app`` is the Hydra app (one job, and the multirun around it); ``scaleout`` the driver that resolves
paths, forwards named variables, sends the shared requests once, takes the exit code from the
launcher's job results and ingests the shards (docs/scaleout.md); ``plan`` expands a sweep into jobs
and prices it. The modules import downwards only: app → scaleout → plan.
"""

from runner.sweep.app import IngestShards, hydra_task, run_hydra
from runner.sweep.plan import plan_sweep, shared_first, sweep_jobs

__all__ = ["IngestShards", "hydra_task", "plan_sweep", "run_hydra", "shared_first", "sweep_jobs"]
