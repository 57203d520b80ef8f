"""The sweep driver: what a multirun does around the launcher so it holds on a cluster (docs/scaleout.md).

Before the launcher (in the process that runs ``vat run -m``): resolve every path a job needs (spec,
store, output folder, shard location) and pass it to the jobs as explicit overrides; send the requests
several jobs share once into the main store and put the answers the jobs depend on in a ``shared`` shard
next to theirs, with the list of keys already stored (jobs read that list and never open the main store);
capture provenance (the git revision, ``VAT_GIT_REVISION``) and forward the named environment variables
(``execution.forward_env``) to the workers in memory only — Ray's ``runtime_env`` is built here and given
to ``ray.init``, never written to the config Hydra saves.

After the launcher: the exit code and summary come from the job results the launcher returned (a job
with no result, or a launcher that failed, is an error and a non-zero exit), and every shard that can
be found (the jobs' ones, the shared one, a killed job's partial journal) is ingested.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.core import display, paths
from runner.core.errors import VatError

_PARALLEL_LAUNCHERS = ("joblib", "ray", "submitit", "rq")
GIT_REVISION_ENV = "VAT_GIT_REVISION"
STORED_KEYS_FILE = "stored_keys.txt"
SHARED_SHARD = "shared"
# Never secrets, needed by every worker: forwarded whether or not forward_env names them.
_ALWAYS_FORWARDED = (
    GIT_REVISION_ENV,
    "LITELLM_LOCAL_MODEL_COST_MAP",
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
)


def is_url(path: str) -> bool:
    """Whether ``path`` is an fsspec URL (``s3://bucket/x``, ``memory://x``) rather than a local path."""
    return "://" in str(path)


def join(base: str, *parts: str) -> str:
    """``base/part/...`` for a local path or an fsspec URL."""
    return "/".join([str(base).rstrip("/"), *parts])


@dataclass
class SweepPlan:
    """What the driver resolved before launching: the jobs' extra overrides and where things go."""

    launcher: str
    parallel: bool
    sweep_dir: str
    store_path: str
    shard_root: str | None
    expected_jobs: int
    overrides: list[str] = field(default_factory=list)
    budget_usd: float | None = None
    shared_cost_usd: float = 0.0
    concurrency: int = 8
    """The sweep's ``execution.concurrency``: requests in flight across every job that runs at once."""
    at_once: int = 1
    """How many jobs may run at the same time (:func:`jobs_at_once`)."""
    job_concurrency: int | None = None
    """Each job's share of ``concurrency`` (None: the jobs run one at a time, or concurrency is swept)."""
    requests_per_minute: float | None = None
    """The sweep's ``execution.requests_per_minute`` (None: no ceiling)."""
    job_requests_per_minute: float | None = None
    """Each job's share of ``requests_per_minute`` (None: no ceiling, one job at a time, or swept)."""
    batch: bool = False
    """Some job may run in batch mode: the driver pools every batch job's requests in one submission."""
    forwarded: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def forwarded_names(self) -> list[str]:
        """The forwarded variables' names (what may be recorded)."""
        return sorted(self.forwarded)

    def shares(self) -> dict[str, Any]:
        """What each job was given of the sweep-wide settings (for the sweep's summary)."""
        out: dict[str, Any] = {"jobs_at_once": self.at_once, "concurrency": self.concurrency}
        if self.job_concurrency is not None:
            out["concurrency_per_job"] = self.job_concurrency
        if self.requests_per_minute is not None:
            out["requests_per_minute"] = self.requests_per_minute
        if self.job_requests_per_minute is not None:
            out["requests_per_minute_per_job"] = self.job_requests_per_minute
        if self.budget_usd is not None and self.expected_jobs:
            out["budget_usd_per_job"] = job_budget(self)
        return out


def _swept_keys(argv: list[str]) -> set[str]:
    """The keys the command line sweeps (``a=1,2``): the driver must not replace them with one value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = [a for a in argv if a not in ("-m", "--multirun")]
    return {o.key_or_group for o in OverridesParser.create().parse_overrides(args) if o.is_sweep_override()}


def _fixed_args(argv: list[str]) -> list[str]:
    """The overrides that are not sweeps (``a=1,2``, ``a=range(3)``) and not ``-m``.

    Asked of Hydra's own parser: a list value (``execution.forward_env=[A,B]``) has commas too.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    args = [a for a in argv if a not in ("-m", "--multirun")]
    return [a for a, o in zip(args, parser.parse_overrides(args), strict=True) if not o.is_sweep_override()]


def plan_sweep_run(argv: list[str]) -> SweepPlan:
    """Resolve paths and settings of a multirun in the driver; raise VatError (one sentence) on a bad one."""
    from runner.config import compose
    from runner.core.paths import git_revision
    from runner.sweep.plan import sweep_jobs

    base = compose(_fixed_args(argv), hydra=True)
    launcher = str(base.hydra.launcher.get("_target_", ""))
    parallel = any(name in launcher for name in _PARALLEL_LAUNCHERS)
    sweep_dir = str(base.hydra.sweep.dir)
    if is_url(sweep_dir):
        raise VatError(
            f"hydra.sweep.dir={sweep_dir} is a URL, but Hydra writes its job folders on local disk; "
            "keep hydra.sweep.dir local and put the shards on object storage with store.shard_dir=URL",
            2,
        )
    sweep_dir = os.path.abspath(sweep_dir)
    store_path = str(base.store.path)
    if is_url(store_path):
        raise VatError(f"store.path={store_path} is a URL, but the DuckDB store must be a local file", 2)
    store_path = os.path.abspath(store_path)
    spec_dir = str(base.spec_dir)
    if not is_url(spec_dir):
        # The same folder a `vat run` reads (VAT_SPEC_DIR, ./spec or the shipped one), made absolute:
        # a job on another node or in another folder must not fall back to a different spec.
        resolved = paths.spec_dir(spec_dir)
        spec_dir = os.path.abspath(resolved) if resolved.exists() else spec_dir
    shard_dir = base.store.get("shard_dir")
    shard_root: str | None = None
    if shard_dir:
        shard_root = str(shard_dir) if is_url(str(shard_dir)) else os.path.abspath(str(shard_dir))
    elif parallel or str(base.store.shards) == "always":
        shard_root = sweep_dir
    names = [str(n) for n in (base.execution.get("forward_env") or [])]
    missing = [n for n in names if n not in os.environ]
    if missing:
        raise VatError(
            f"execution.forward_env names {', '.join(missing)}, which this shell does not set; "
            "export it before the sweep or drop it from the list",
            2,
        )
    rev = os.environ.get(GIT_REVISION_ENV) or git_revision()
    if rev:
        os.environ[GIT_REVISION_ENV] = rev  # jobs in this process and in local worker processes see it
    forwarded = {n: os.environ[n] for n in (*_ALWAYS_FORWARDED, *names) if n in os.environ}
    overrides = [
        f"hydra.sweep.dir={sweep_dir}",  # resolved once here: ${now:} and ${oc.env:} differ on a worker
        f"store.path={store_path}",
        f"spec_dir={spec_dir}",
    ]
    if shard_root:
        overrides.append(f"store.shard_dir={shard_root}")
    expected = len(sweep_jobs(argv))
    plan = SweepPlan(
        launcher=launcher,
        parallel=parallel,
        sweep_dir=sweep_dir,
        store_path=store_path,
        shard_root=shard_root,
        expected_jobs=expected,
        overrides=overrides,
        budget_usd=None if base.execution.budget_usd is None else float(base.execution.budget_usd),
        concurrency=int(base.execution.concurrency),
        requests_per_minute=_optional_float(base.execution.get("requests_per_minute")),
        at_once=jobs_at_once(base.hydra.launcher, parallel, expected),
        forwarded=forwarded,
    )
    swept = _swept_keys(argv)
    plan.batch = str(base.execution.mode) == "batch" or "execution.mode" in swept
    if "execution.concurrency" not in swept:
        share_concurrency(plan)
    if "execution.requests_per_minute" not in swept:
        share_rate(plan)
    return plan


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def jobs_at_once(launcher: Any, parallel: bool, expected: int) -> int:
    """How many of the sweep's ``expected`` jobs may run at the same time: the most the launcher allows.

    The basic launcher runs one job at a time; joblib runs ``hydra.launcher.n_jobs`` (negative: the
    driver's cores + 1 + n_jobs, joblib's rule) and submitit ``array_parallelism``; Ray starts every job
    the cluster has room for, which the driver cannot know, so all of them. An upper bound on purpose:
    the shares then never add up to more than the sweep's setting.
    """
    if not parallel or expected <= 1:
        return 1
    name = str(launcher.get("_target_", ""))
    limit = expected
    if "joblib" in name:
        n_jobs = int(launcher.get("n_jobs", -1))
        limit = n_jobs if n_jobs > 0 else (os.cpu_count() or 1) + 1 + n_jobs
    elif "submitit" in name:
        limit = int(launcher.get("array_parallelism", expected))
    return max(1, min(expected, limit))


def share_concurrency(plan: SweepPlan) -> None:
    """Give each job an equal share of ``execution.concurrency`` (at least 1), as an override.

    Each job takes ``execution.concurrency`` as its own: N jobs at once had N times as many requests in
    flight at the provider as the setting says, and met its rate limit N times as hard.
    """
    if plan.at_once <= 1:
        return
    plan.job_concurrency = max(1, plan.concurrency // plan.at_once)
    if plan.concurrency < plan.at_once:
        display.warn(
            f"execution.concurrency={plan.concurrency} is less than the {plan.at_once} jobs that may run "
            f"at once, so each job gets 1 and up to {plan.at_once} requests are in flight sweep-wide; "
            "lower the launcher's parallelism (hydra.launcher.n_jobs) to keep to the setting"
        )
    plan.overrides.append(f"execution.concurrency={plan.job_concurrency}")


def share_rate(plan: SweepPlan) -> None:
    """Give each job an equal share of ``execution.requests_per_minute`` (at least 1), as an override.

    The ceiling is a provider's limit for the whole account: jobs that each took all of it would send
    N times as fast and meet the provider's 429s instead. Shares are rounded down (to 1/1000), so they
    never add up to more than the setting, except where the floor of 1 applies, which is said.
    """
    if plan.at_once <= 1 or plan.requests_per_minute is None:
        return
    share = int(plan.requests_per_minute / plan.at_once * 1000) / 1000
    if share < 1:
        display.warn(
            f"execution.requests_per_minute={plan.requests_per_minute:g} shared by the {plan.at_once} jobs "
            f"that may run at once is under 1 each, so each job gets 1 and the sweep may send "
            f"{plan.at_once} a minute; lower the launcher's parallelism (hydra.launcher.n_jobs) to keep to it"
        )
        share = 1.0
    plan.job_requests_per_minute = share
    plan.overrides.append(f"execution.requests_per_minute={share}")  # str: exact, where :g rounds


def with_overrides(argv: list[str], plan: SweepPlan) -> list[str]:
    """``argv`` with the driver's resolved overrides replacing the user's spelling of the same keys."""
    keys = {o.split("=", 1)[0] for o in plan.overrides}
    kept = [a for a in argv if a.split("=", 1)[0].lstrip("+") not in keys and a not in ("-m", "--multirun")]
    return ["-m", *kept, *plan.overrides]  # Hydra's parser takes the overrides in one run after its flags


# ---------------------------------------------------------------- before the launcher


def prepare(argv: list[str], plan: SweepPlan) -> None:
    """Shared requests once into the main store; the shared shard and the stored-key list for the jobs."""
    from runner.sweep.plan import job_plans, shared_first

    jobs = job_plans(argv) if plan.parallel or plan.shard_root or plan.batch else []  # composed once
    online = jobs
    if plan.batch:
        pool_batch_jobs(plan, jobs)
        online = [j for j in jobs if str(j[1].execution.mode) != "batch"]
    if plan.parallel:
        try:
            plan.shared_cost_usd += shared_first(argv, online)
        except VatError as exc:
            display.error(str(exc))
    if plan.shard_root:
        write_shared(argv, plan, jobs)
    if plan.budget_usd is not None and plan.expected_jobs:
        plan.overrides.append(f"execution.budget_usd={job_budget(plan):.9f}")


def pool_batch_jobs(plan: SweepPlan, jobs: list[Any]) -> None:
    """Send every batch-mode job's requests in one pooled submission before any job starts.

    Each job would otherwise take its own batch window, and the pre they share would be sent online
    first. When the pool leaves requests without an answer, the sweep stops here (exit 3): its jobs would
    each submit the gaps again in batches of their own.
    """
    from runner.pipeline import batch_together, pooled_problem

    units = [(cfg, compiled) for _, cfg, compiled in jobs if str(cfg.execution.mode) == "batch"]
    if not units:
        return
    stats = batch_together(units, "batch-mode jobs of the sweep")
    plan.shared_cost_usd += stats.cost_usd
    problem = pooled_problem(stats)
    if problem:
        raise VatError(f"{problem}; no job was started", 3)


def job_budget(plan: SweepPlan) -> float:
    """Each job's share of the sweep's ``execution.budget_usd``, after what the shared requests cost.

    In a sweep the budget is the whole sweep's: N jobs each given all of it spent N times as much.
    """
    assert plan.budget_usd is not None
    left = max(0.0, plan.budget_usd - plan.shared_cost_usd)
    return int(left / plan.expected_jobs * 1e9) / 1e9  # rounded down: the shares never add up to more


def write_shared(argv: list[str], plan: SweepPlan, jobs: list[Any] | None = None) -> None:
    """Put in ``<shard root>/shared`` the stored answers the sweep's jobs use, and list their keys.

    The jobs read the list (``store.stored_keys``) instead of opening the main store, which a worker on
    another node cannot see; the shared shard makes a store built from the shards alone complete.
    """
    from runner.pipeline import has_tables
    from runner.store.shards import export_keys
    from runner.store.store import open_store
    from runner.sweep.plan import job_plans

    assert plan.shard_root is not None
    keys = {k for _, _, p in (jobs if jobs is not None else job_plans(argv)) for k in p.keys()}  # noqa: SIM118
    stored: set[str] = set()
    if Path(plan.store_path).exists():
        with open_store(plan.store_path, read_only=True) as store:
            stored = store.stored_keys(sorted(keys)) if has_tables(store) else set()
            if stored:
                export_keys(store, sorted(stored), join(plan.shard_root, SHARED_SHARD))
    put_text(join(plan.shard_root, STORED_KEYS_FILE), "".join(f"{k}\n" for k in sorted(stored)))
    plan.overrides.append(f"store.stored_keys={join(plan.shard_root, STORED_KEYS_FILE)}")


def put_text(url: str, text: str) -> None:
    """Write a small text file locally or to an fsspec URL."""
    if not is_url(url):
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        Path(url).write_text(text)
        return
    import fsspec

    with fsspec.open(url, "w") as fh:
        fh.write(text)


def read_keys(url: str) -> set[str]:
    """The stored-key list the driver wrote (one key a line)."""
    try:
        if is_url(url):
            import fsspec

            with fsspec.open(url, "r") as fh:
                text = fh.read()
        else:
            text = Path(url).read_text()
    except (OSError, ValueError) as exc:
        raise VatError(f"cannot read the sweep's stored-key list {url}: {exc}", 1) from exc
    return {line for line in text.splitlines() if line}


@contextlib.contextmanager
def ray_session(plan: SweepPlan, argv: list[str]) -> Iterator[None]:
    """With the Ray launcher: ``ray.init`` here, with the forwarded variables in an in-memory runtime_env.

    The launcher then finds Ray running and uses it. This also avoids hydra-ray-launcher 1.2.2's
    ``object_store_memory`` default, which Ray refuses when joining a running cluster (``address=``).
    """
    if "ray" not in plan.launcher:
        yield
        return
    from omegaconf import OmegaConf

    from runner.config import compose

    try:
        import ray
    except ImportError as exc:
        raise VatError("the Ray launcher needs the scale-out extras; run `make install-scale`", 2) from exc
    base = compose(_fixed_args(argv), hydra=True)
    raw = OmegaConf.to_container(base.hydra.launcher.get("ray", {}).get("init", {}) or {}, resolve=True)
    assert isinstance(raw, dict)
    init = ray_init_args({str(k): v for k, v in raw.items()}, plan.forwarded)
    started = not ray.is_initialized()
    if started:
        ray.init(**init)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def ray_init_args(init: dict[str, Any], forwarded: dict[str, str]) -> dict[str, Any]:
    """``ray.init`` arguments: the launcher's, less what Ray refuses when joining, plus the env vars."""
    init = dict(init)
    if init.get("address"):
        # Joining a running cluster: its nodes have their resources already.
        for key in ("object_store_memory", "num_cpus", "num_gpus", "resources"):
            init.pop(key, None)
    runtime_env = dict(init.pop("runtime_env", None) or {})
    runtime_env["env_vars"] = {**(runtime_env.get("env_vars") or {}), **forwarded}
    init["runtime_env"] = runtime_env
    init.setdefault("log_to_driver", True)
    return init


# ---------------------------------------------------------------- after the launcher


def job_results(returns: Any, expected: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Each job's summary from the launcher's returns, and the problems (failed or missing jobs).

    ``returns`` is what Hydra's sweeper returned: a list of batches of ``JobReturn``.
    """
    from hydra.core.utils import JobStatus

    flat = [r for batch in (returns or []) for r in (batch if isinstance(batch, list | tuple) else [batch])]
    jobs: list[dict[str, Any]] = []
    problems: list[str] = []
    for i, ret in enumerate(flat):
        num = _job_num(ret, i)
        if ret.status == JobStatus.FAILED:
            exc = ret._return_value
            jobs.append({"job": num, "rc": 1, "error": f"{type(exc).__name__}: {exc}"})
            problems.append(f"job {num} failed: {type(exc).__name__}: {exc}")
            continue
        value = ret._return_value
        if not isinstance(value, dict) or "rc" not in value:
            jobs.append({"job": num, "rc": 1, "error": "no result"})
            problems.append(f"job {num} returned no result")
            continue
        jobs.append({"job": num, **value})
    if len(flat) < expected:
        problems.append(f"{expected - len(flat)} of {expected} job(s) returned no result")
    return jobs, problems


def _job_num(ret: Any, default: int) -> int:
    with contextlib.suppress(Exception):
        return int(ret.hydra_cfg.hydra.job.num)
    return default


def sweep_exit_code(jobs: list[dict[str, Any]], problems: list[str], expected: int) -> int:
    """The worst job exit code; 1 at least when a job failed, returned nothing, or no job ran."""
    codes = [int(j.get("rc", 1)) for j in jobs]
    rc = max(codes) if codes else 0
    if problems or (expected and not jobs):
        rc = max(rc, 1)
    return rc


def ingest_sweep(plan: SweepPlan) -> tuple[int, bool, dict[str, int]] | None:
    """Ingest every shard under the shard root (and a killed job's journal); None when there is none."""
    from runner.store.shards import ingest, recover_partial

    if not plan.shard_root:
        return None
    roots = [plan.shard_root]
    if not is_url(plan.shard_root):
        recover_partial(plan.shard_root)
    elif Path(plan.sweep_dir).is_dir():
        # Jobs on this machine killed before their upload: their journals, exported here.
        roots += recover_partial(plan.sweep_dir)
    try:
        files, counts = ingest(roots, plan.store_path, with_count=True)
    except VatError as exc:
        if "no shard files" in str(exc):
            return None
        raise
    shared = f"/{SHARED_SHARD}/responses.parquet"
    jobs = {f.rsplit("/", 1)[0] for f in files if not f.endswith(shared)}
    return len(jobs), len(jobs) < len(files), counts


LAUNCHER_ERROR_FILE = "launcher-error.txt"
"""Where, in the sweep folder, the driver keeps the traceback of a launcher that failed."""


def report_failure(exc: BaseException, sweep_dir: str | None = None) -> str:
    """One sentence for a launcher that failed (a killed worker, a timeout); its traceback goes to a file.

    The traceback of a killed joblib worker or a scheduler's timeout is the launcher's machinery, not
    the user's mistake: printed, it buries the summary. It is kept in ``<sweep dir>/launcher-error.txt``.
    """
    first = str(exc).splitlines()[0] if str(exc) else ""
    message = f"the launcher failed ({type(exc).__name__}: {first})"
    if sweep_dir is None:
        return message
    path = Path(sweep_dir) / LAUNCHER_ERROR_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(traceback.format_exception(exc)))
    except OSError:
        return message
    return f"{message}; its traceback is in {path}"
