"""The yardstick of ``bench_overhead.py``: a bare ``litellm.acompletion`` loop, nothing else.

``python benchmarks/bare_loop.py <concurrency> <overrides...>`` compiles the same plan ``vat run`` would
(before the clock starts), then imports LiteLLM and sends every request with ``concurrency`` workers,
the same model, parameters and timeout, and prints one JSON line: judgments, seconds (LiteLLM import
included, as a ``vat run`` pays it too) and seconds of the send loop alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str]) -> None:
    """Compile, then time import + send."""
    from runner.compile.plan import compile_plan, gen_params
    from runner.config import compose
    from runner.spec.load import load_index

    concurrency, overrides = int(argv[0]), argv[1:]
    cfg = compose(overrides)
    index = load_index(cfg.spec_dir)
    plan = compile_plan(index, cfg)
    seen: set[str] = set()
    reqs = [r for r in plan.requests if not (r.key in seen or seen.add(r.key))]
    params = gen_params(cfg.model)
    start = time.perf_counter()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    from runner.execute.providers import register_for

    register_for({r.model for r in reqs})
    queue = iter(reqs)

    async def worker() -> None:
        for r in queue:
            # api_base as `vat run` passes it (None for mock/ and local/ models)
            extra = {"api_base": r.api_base} if r.api_base else {}
            await litellm.acompletion(
                model=r.model, messages=list(r.messages), timeout=60.0, num_retries=0, **params, **extra
            )

    async def drive() -> None:
        await asyncio.gather(*(worker() for _ in range(concurrency)))

    loop_start = time.perf_counter()
    asyncio.run(drive())
    end = time.perf_counter()
    print(json.dumps({"judgments": len(reqs), "wall_s": end - start, "loop_s": end - loop_start}))


if __name__ == "__main__":
    main(sys.argv[1:])
