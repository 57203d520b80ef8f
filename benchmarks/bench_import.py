"""`vat import` of a synthetic generation file: 30,000 rows by default (target < 2 minutes, < 1 GB peak RSS).

The file is shaped like the output of a generation pipeline, the kind that broke the importer: one
JSON line per action with country and ISSP module titles ("ISSP 2012 - Family & Changing Gender Roles
IV"), the scene text, and the model's answer holding value, micro-value, polarity and action text,
written as fenced JSON, a Python-literal dict, plain JSON or JSON among prose; a few answers are cut
off or broken, a few topics are unknown and a few actions empty, so every drop reason is exercised.
~112 actions per scene (the paper's shape), so 30,000 rows make ~270 scenes.

The script makes the file itself (seeded), runs ``vat import ... format=json`` in a fresh process and
prints wall time, rows/s, the child's peak RSS (``wait4``), and the rows mapped and dropped by reason.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import last_json, show, vat  # noqa: E402

COUNTRIES = [
    "United States",
    "USA",
    "India",
    "Pakistan",
    "Nigeria",
    "Philippines",
    "UK",
    "Germany",
    "Uganda",
    "Canada",
    "Egypt",
    "France",
    "Australia",
]
TOPICS = [
    "ISSP 2012 - Family & Changing Gender Roles IV",
    "Work Orientations",
    "ISSP 2016 – Role of Government V",
    "Social Networks and Social Resources",
    "Social Inequality",
    "Environment III",
    "National Identity",
    "Citizenship II",
    "Leisure Time and Sports",
    "Health and Health Care",
    "Religion",
]
ACTIONS_PER_SCENE = 112
SHARES = {"fenced": 0.40, "python": 0.30, "json": 0.17, "prose": 0.08, "truncated": 0.03, "broken": 0.02}
ODD_TOPIC, EMPTY_ACTION, NEAR_COPY = 0.03, 0.01, 0.01
"""Share of scenes whose topic maps to nothing, of actions left empty, and of near-copies of an earlier action."""


def _vocabulary(rng: random.Random, n: int = 4000) -> list[str]:
    """Pronounceable made-up words, so actions rarely share enough words to be near-duplicates."""
    syllables = [c + v for c in "bdfghklmnprstvz" for v in "aeiou"]
    words = {"".join(rng.choice(syllables) for _ in range(rng.randint(2, 3))) for _ in range(n * 2)}
    return sorted(words)[:n]


def _answer(rng: random.Random, body: dict[str, Any]) -> str:
    """The model's answer in one of the shapes generation files hold."""
    kind = rng.choices(list(SHARES), weights=list(SHARES.values()))[0]
    text = json.dumps(body, ensure_ascii=False)
    if kind == "fenced":
        return f"```json\n{text}\n```"
    if kind == "python":
        return repr(body)
    if kind == "prose":
        return f"Sure! Here is the action you asked for:\n{text}\nLet me know if you need more."
    if kind == "truncated":
        return text[: len(text) // 2]
    if kind == "broken":
        return text.replace('"', "", 3)
    return text


def make_file(path: Path, rows: int, seed: int = 0) -> None:
    """Write ``rows`` JSON lines to ``path``."""
    from runner.spec.load import load_index

    rng = random.Random(seed)
    vocab = _vocabulary(rng)
    system = load_index(Path(__file__).resolve().parent.parent / "spec", check_lock=False).value_system
    micro = [(v.name, m.name) for v in system.values for m in v.micro_values]
    earlier: list[str] = []
    with path.open("w") as f:
        for start in range(0, rows, ACTIONS_PER_SCENE):
            country, topic = rng.choice(COUNTRIES), rng.choice(TOPICS)
            if rng.random() < ODD_TOPIC:  # whole scenes carry the odd topic name
                topic = "Pastimes & Hobbies"
            scene = "You are " + " ".join(rng.choice(vocab) for _ in range(rng.randint(40, 80))) + "."
            for _ in range(min(ACTIONS_PER_SCENE, rows - start)):
                value, micro_value = rng.choice(micro)
                action = "I " + " ".join(rng.choice(vocab) for _ in range(rng.randint(8, 20))) + "."
                if earlier and rng.random() < NEAR_COPY:  # one word changed: a near-duplicate to flag
                    words = rng.choice(earlier).split()
                    words[-1] = rng.choice(vocab) + "."
                    action = " ".join(words)
                earlier.append(action)
                body = {
                    "value": value,
                    "micro_value": micro_value,
                    "polarity": rng.choice(["express", "suppress"]),
                    "action": "" if rng.random() < EMPTY_ACTION else action,
                }
                row = {"country": country, "topic": topic, "scenario": scene, "response": _answer(rng, body)}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


def near_duplicate_check(path: Path) -> dict[str, float]:
    """The near-duplicate join alone, in this process, on the file's actions plus the shipped ones."""
    import time
    import tracemalloc

    from runner.dataset.importer import CellError, parse_cell
    from runner.spec.load import load_index
    from runner.spec.quality import _words, similar_pairs

    shipped = load_index(Path(__file__).resolve().parent.parent / "spec", check_lock=False)
    texts = [a.text for s in shipped.scenes.values() for a in s.actions]
    for line in path.read_text().splitlines():
        try:
            texts.append(parse_cell(json.loads(line)["response"], "response")[0]["action"])
        except CellError:
            continue
    sets = [_words(t) for t in texts if t]
    start, cpu = time.perf_counter(), time.process_time()
    pairs = similar_pairs(sets)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    tracemalloc.start()  # a second run for memory: tracemalloc slows the first one down several times
    similar_pairs(sets)
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return {"actions": len(sets), "pairs": len(pairs), "wall_s": wall, "cpu_s": cpu, "peak_mb": peak}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse the options and run."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=30_000)
    p.add_argument("--quick", action="store_true", help="3,000 rows")
    args = p.parse_args(argv)
    return run(3_000 if args.quick else args.rows)


def run(rows: int) -> dict[str, Any]:
    """Make the file, import it, print the figures and return them."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "generation.jsonl"
        make_file(src, rows)
        show("synthetic file", f"{rows:,} rows, {src.stat().st_size / 1e6:.1f} MB")
        run = vat(
            "import",
            f"source={src}",
            "columns.country=country",
            "columns.topic=topic",
            "columns.scene=scenario",
            "columns.value=response.value",
            "columns.micro_value=response.micro_value",
            "columns.polarity=response.polarity",
            "columns.action=response.action",
            f"out={Path(tmp) / 'out'}",
            "format=json",
        )
        rep = last_json(run["stdout"])
        join = near_duplicate_check(src)
    figures = {
        "import_wall_s": run["wall_s"],
        "import_rows_per_s": rows / run["wall_s"],
        "import_cpu_s": run["cpu_s"],
        "import_peak_rss_mb": run["rss_mb"],
        "import_inner_rows_per_s": rep["rows_per_s"],
    }
    show("vat import, whole process", run["wall_s"], "s (target < 120 s)")
    show("vat import, CPU time of the process (what a busy machine does not inflate)", run["cpu_s"], "s")
    show("rows/s, whole process", rows / run["wall_s"])
    show("rows/s, as the summary reports it (config and spec loaded)", rep["rows_per_s"])
    show("peak RSS of the process", run["rss_mb"], "MB (target < 1024 MB)")
    show("rows mapped / not", f"{rep['rows_mapped']:,} / {rep['rows_unmapped']:,}")
    show("scenes, actions written", f"{rep['scenes_written']}, {rep['actions_written']:,}")
    show("object cells read", ", ".join(f"{k} {n:,}" for k, n in rep["cells_parsed"].items()))
    for u in rep["unmapped"]:
        show(f"  dropped: {u['reason']}", u["rows"])
    show(
        "near-duplicate notes",
        sum("near-duplicate" in n for v in rep["scenes_to_review"].values() for n in v),
    )
    show(
        "near-duplicate join alone",
        f"{join['actions']:,} actions, {join['pairs']:,} pairs, {join['wall_s']:.2f} s ({join['cpu_s']:.2f} s CPU), "
        f"{join['peak_mb']:.1f} MB allocated at peak (tracemalloc)",
    )
    figures["near_duplicate_join_s"] = join["wall_s"]
    return figures


if __name__ == "__main__":
    main()
