"""Scene documents on their way into spec/: written by `vat generate` or `vat import` for human review.

Shared by :mod:`runner.dataset.generate` and :mod:`runner.dataset.importer`: resolving country, topic, value and
micro-value names to our ids, choosing free scene ids, writing a scene as spec-format YAML (validated
before and after writing), and running the spec checks (:func:`runner.spec.load.check_scene`) and quality
checks (:mod:`runner.spec.quality`) on a batch of drafts, against the shipped scenes too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from runner.core.errors import VatError
from runner.core.yamlio import YamlDoc, YamlProblem, read_yaml
from runner.spec.load import SpecIndex, check_scene
from runner.spec.models import COUNTRIES, TOPICS, Scene, ValueSystem

TEST_SHARE = 0.3
"""Share of new scenes that `split=auto` puts in the test split (the paper's 70/30)."""

_FILLER = frozenset({"a", "an", "the", "my", "of", "and", "in", "for", "to"})
_COUNTRY_ALIASES = {
    "usa": "us",
    "u_s": "us",
    "u_s_a": "us",
    "united_states_of_america": "us",
    "america": "us",
    "uk": "gb",
    "u_k": "gb",
    "great_britain": "gb",
    "britain": "gb",
    "united_kingdom_of_great_britain_and_northern_ireland": "gb",
    "republic_of_india": "in",
    "deutschland": "de",
    "arab_republic_of_egypt": "eg",
}


def norm(text: Any) -> str:
    """A name as a lookup key: lowercase, '&' as 'and', every run of other characters as one '_'."""
    s = str(text).strip().lower().replace("&", " and ")
    return re.sub(r"[^a-z0-9]+", "_", s).strip("_")


def loose(text: Any) -> str:
    """:func:`norm` without filler words ('A varied life' → 'varied_life'; 'of', 'my', 'and' dropped)."""
    return "_".join(w for w in norm(text).split("_") if w and w not in _FILLER)


class _Lookup:
    """Name or id → id, matching exactly after :func:`norm`, then loosely after :func:`loose`."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.exact: dict[str, str] = {}
        self.loose: dict[str, str] = {}
        for name, target in pairs:
            self.exact.setdefault(norm(name), target)
            self.loose.setdefault(loose(name), target)

    def get(self, text: Any) -> str | None:
        if text is None or not str(text).strip():
            return None
        return self.exact.get(norm(text)) or self.loose.get(loose(text))


@dataclass
class Names:
    """Resolve the names people and datasets use for countries, topics, values and micro-values."""

    countries: _Lookup
    topics: _Lookup
    values: _Lookup
    micro_values: _Lookup
    micro_owner: dict[str, str]
    """Micro-value id → its value id."""

    @classmethod
    def build(cls, vs: ValueSystem, aliases: dict[str, dict[str, str]] | None = None) -> Names:
        """Lookups from the spec's ids and names, plus built-in country aliases and ``aliases`` by kind.

        ``aliases`` maps ``country``/``topic``/``value`` to {alias: id}; a ``value`` alias may name a
        value or a micro-value id.
        """
        aliases = aliases or {}
        country = [(c, c) for c in COUNTRIES] + [(n, c) for c, n in COUNTRIES.items()]
        country += list(_COUNTRY_ALIASES.items()) + list(aliases.get("country", {}).items())
        topic = [(t, t) for t in TOPICS] + [(n, t) for t, n in TOPICS.items()]
        topic += list(aliases.get("topic", {}).items())
        value_ids = {v.id for v in vs.values}
        micro_owner = {m.id: v.id for v in vs.values for m in v.micro_values}
        value = [(v.id, v.id) for v in vs.values] + [(v.name, v.id) for v in vs.values]
        micro = [(m.id, m.id) for v in vs.values for m in v.micro_values]
        micro += [(m.name, m.id) for v in vs.values for m in v.micro_values]
        for alias, target in aliases.get("value", {}).items():
            if target in value_ids:
                value.insert(0, (alias, target))
            elif target in micro_owner:
                micro.insert(0, (alias, target))
            else:
                raise VatError(
                    f"value_names maps {alias!r} to {target!r}, which is neither a value nor a micro-value id; "
                    "see spec/values/",
                    2,
                )
        for kind, pairs, ok in (("country", country, COUNTRIES), ("topic", topic, TOPICS)):
            bad = [t for _, t in pairs if t not in ok]
            if bad:
                raise VatError(f"{kind}_names maps to {bad[0]!r}, which is not one of: {', '.join(ok)}", 2)
        return cls(_Lookup(country), _Lookup(topic), _Lookup(value), _Lookup(micro), micro_owner)

    def country(self, text: Any) -> str | None:
        """Country code for a code or name ('United States', 'us', 'USA' → 'us'), or None."""
        return self.countries.get(text)

    def topic(self, text: Any) -> str | None:
        """Topic id for an id or name ('Family and gender roles' → 'family_gender'), or None."""
        return self.topics.get(text)

    def value(self, text: Any) -> str | None:
        """Value id for an id or name ('Self-direction' → 'self_direction'), or None."""
        return self.values.get(text)

    def micro_value(self, text: Any) -> str | None:
        """Micro-value id for an id or name ('Social power', 'social_power' → 'social_power'), or None."""
        return self.micro_values.get(text)


def resolve_cells(names: Names, countries: list[str], topics: list[str]) -> list[tuple[str, str]]:
    """The (country, topic) cells of a selection (empty lists: all); unknown names fail clearly."""
    picked: list[list[str]] = []
    for kind, given, every, lookup in (
        ("countries", countries, list(COUNTRIES), names.country),
        ("topics", topics, list(TOPICS), names.topic),
    ):
        ids = []
        for g in given:
            got = lookup(g)
            if got is None:
                raise VatError(f"{kind}: {g!r} is not known; use one of: {', '.join(every)}", 2)
            ids.append(got)
        picked.append(list(dict.fromkeys(ids)) or every)
    return [(c, t) for c in picked[0] for t in picked[1]]


def scene_ids(country: str, topic: str, taken: set[str], n: int = 1) -> list[str]:
    """The first ``n`` free ids of a cell: ``<country>-<topic>``, then ``-2``, ``-3``, ... (not in ``taken``)."""
    out, k = [], 1
    while len(out) < n:
        sid = f"{country}-{topic}" if k == 1 else f"{country}-{topic}-{k}"
        if sid not in taken:
            out.append(sid)
        k += 1
    return out


def auto_split(scene_id: str) -> str:
    """Train or test by a hash of the id: stable, and about :data:`TEST_SHARE` of scenes go to test."""
    h = int.from_bytes(hashlib.sha256(scene_id.encode()).digest()[:4], "big")
    return "test" if h % 1000 < TEST_SHARE * 1000 else "train"


def check_out_dir(out: Path, spec_dir: str | Path, key: str) -> Path:
    """Refuse an output folder inside the spec: drafts reach spec/ only through a reviewed pull request."""
    resolved, spec = out.resolve(), Path(spec_dir).resolve()
    if resolved == spec or spec in resolved.parents:
        raise VatError(
            f"{key}={out} is inside {spec_dir}/; write drafts elsewhere (e.g. results/), review them, "
            "then move them into spec/scenarios/",
            2,
        )
    return out


def scene_path(out: Path, scene_id: str, country: str) -> Path:
    """Where a draft goes: ``<out>/<country>/<id without the country prefix>.yaml`` (the spec layout)."""
    stem = scene_id.removeprefix(f"{country}-")
    return out / country / f"{stem}.yaml"


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Spec-style YAML: keys in order, long text folded, no anchors.

    libyaml's emitter when PyYAML has it (the same text for every shipped scene, ~8x faster: a
    30,000-row import spent most of its time in the pure-Python one); write_scene reads each file back.
    """

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = (
        ">" if len(data) > 100 and "\n" not in data and data == data.strip() and "  " not in data else None
    )
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def dump_scene(doc: dict[str, Any], header: str) -> str:
    """The YAML text of a scene document, under a comment ``header``."""
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comment + body


def validate_doc(doc: dict[str, Any]) -> Scene:
    """The document as a :class:`Scene`; a schema error raises :class:`ValueError` with every message."""
    try:
        return Scene.model_validate(doc)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ValueError(details) from None


def write_scene(doc: dict[str, Any], path: Path, header: str) -> Scene:
    """Validate ``doc``, write it as YAML, read the file back and check it is the same scene."""
    scene = validate_doc(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(dump_scene(doc, header), encoding="utf-8")
    try:
        again = Scene.model_validate(read_yaml(tmp).data)
    except (YamlProblem, ValidationError) as exc:  # a bug in the dumper, not in the user's input
        raise VatError(
            f"{path}: written YAML does not read back as a scene ({exc}); please report it"
        ) from None
    if again != scene:
        raise VatError(f"{path}: written YAML reads back differently; please report it")
    tmp.replace(path)
    return scene


def read_scenes(folder: Path) -> list[tuple[Scene, Path]]:
    """Every scene YAML under ``folder`` (drafts or a spec scenarios folder); a bad file fails clearly."""
    out = []
    for file in sorted(folder.rglob("*.y*ml")):
        try:
            doc = read_yaml(file)
            out.append((Scene.model_validate(doc.data), file))
        except YamlProblem as exc:
            raise VatError(f"{exc.problem}; fix or remove the file", 1) from None
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise VatError(f"{file}: {field}: {err['msg']}; fix or remove the file", 1) from None
    return out


def review_problems(drafts: dict[str, tuple[Scene, Path]], base: SpecIndex) -> dict[str, list[str]]:
    """Spec and quality problems of each draft, by scene id (near-duplicates checked against spec/ too).

    A draft that shares an id with a shipped scene replaces it for the near-duplicate check (it is a
    new version of that scene), so it is not compared with its own predecessor.
    """
    from runner.spec.quality import label_and_length_problems

    value_ids = [v.id for v in sorted(base.value_system.values, key=lambda v: v.circle_index)]
    micro = {m.id: v.id for v in base.value_system.values for m in v.micro_values}
    out: dict[str, list[str]] = {sid: [] for sid in drafts}
    for sid, (scene, path) in drafts.items():
        for p in check_scene(scene, YamlDoc(str(path), None), value_ids, micro):
            out[sid].append(f"{p.field}: {p.message}" if p.field else p.message)
    index = SpecIndex(
        root=base.root,
        value_system=base.value_system,
        scenes={sid: scene for sid, (scene, _) in drafts.items()},
        strategies={},
        prompts={},
        hashes={},
        files={f"scenarios/{sid}": str(path) for sid, (_, path) in drafts.items()},
    )
    draft_paths = {str(path): sid for sid, (_, path) in drafts.items()}
    for p in label_and_length_problems(index):
        out[draft_paths[p.path]].append(f"{p.field}: {p.message}")
    others = [s for sid, s in base.scenes.items() if sid not in drafts]
    for sid, aid, other_sid, other_aid, sim in draft_near_duplicates([s for s, _ in drafts.values()], others):
        out[sid].append(f"action {aid}: near-duplicate of {other_sid}/{other_aid} (similarity {sim:.2f})")
    return out


def draft_near_duplicates(drafts: list[Scene], others: list[Scene]) -> list[tuple[str, str, str, str, float]]:
    """Draft actions whose word-set similarity with another action reaches the quality threshold.

    Returns (draft scene, action, other scene, other action, similarity); the other action may be in
    a draft or a shipped scene.

    The measure of :func:`runner.spec.quality.near_duplicates` (:func:`runner.spec.quality.similar_pairs`, which
    never builds the all-pairs matrix), kept for pairs that involve a draft, in draft order.
    """
    from runner.spec.quality import NEAR_DUPLICATE, _words, similar_pairs

    mine = [(s.id, a.id, _words(a.text)) for s in drafts for a in s.actions]
    every = mine + [(s.id, a.id, _words(a.text)) for s in others for a in s.actions]
    if not mine or len(every) < 2:
        return []
    found = []
    for i, j, sim in similar_pairs([ws for _, _, ws in every], NEAR_DUPLICATE):
        found += [(i, j, sim)] if i < len(mine) else []
        found += [(j, i, sim)] if j < len(mine) else []  # two drafts: each is told about the other
    return [(mine[i][0], mine[i][1], every[j][0], every[j][1], sim) for i, j, sim in sorted(found)]
