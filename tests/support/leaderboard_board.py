"""Shared helpers of the leaderboard tests: a tmp leaderboard folder with a mock entry and a tiny release."""

from __future__ import annotations

from pathlib import Path

from support.specs import SPEC

ROOT = Path(__file__).resolve().parents[2]

ENTRY = """\
model: {model}
display_name: {name}
provider: tests
licence: none
link: https://example.org/x
contact: nobody
parameters: {{temperature: 0.0, max_tokens: 3, logprobs: true, top_logprobs: 5}}
"""


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path``, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def pins(n: int = 5) -> list[str]:
    """The first ``n`` test-split scenes as ``id@version`` (the spec grows; the pins follow it)."""
    from runner.spec.entries import release_pins
    from runner.spec.load import load_index

    return release_pins(load_index(SPEC, check_lock=False))[:n]


def train_pins() -> list[str]:
    """Every train-split scene as ``id@version`` (the pool a release pins for its demonstrations)."""
    from runner.spec.entries import release_pins
    from runner.spec.load import load_index

    return release_pins(load_index(SPEC, check_lock=False), "train")


def tag(kind: str, ident: str) -> str:
    """``ident@<current version>`` of a spec document (the spec evolves; tests pin what is there)."""
    from runner.spec.load import load_index

    return f"{ident}@{load_index(ROOT / 'spec', check_lock=False).hashes[f'{kind}/{ident}'][0]}"


def make_board(root: Path, scene_pins: list[str]) -> Path:
    """A leaderboard folder: entry ``test__mock-a`` (mock/a) and release ``t1`` (fewshot_2 × 2 targets).

    ``t1`` pins ``scene_pins`` as its test scenes and every current train scene for demonstrations."""
    write(root / "entries" / "test__mock-a.yaml", ENTRY.format(model="mock/a", name="Mock A"))
    write(
        root / "releases" / "t1.yaml",
        f"title: Test release\ndescription: A small release for tests.\nvalue_system: {tag('values', 'schwartz10')}\n"
        f"prompt: {tag('prompts', 'judgment')}\nscenes: [" + ", ".join(scene_pins) + "]\n"
        "train_scenes: [" + ", ".join(train_pins()) + "]\n"
        f"strategies: [{tag('strategies', 'fewshot_2')}]\n"
        "targets:\n  - {target: security, direction: reinforce}\n  - {target: power, direction: suppress}\n"
        "metrics: {bootstrap_b: 200, stability_b: 40}\n",
    )
    (root / "submissions").mkdir(parents=True, exist_ok=True)
    return root
