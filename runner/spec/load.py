"""Stage 1, load: ``spec/**/*.yaml`` → a frozen, validated :class:`SpecIndex`.

Every problem is collected (not just the first) and reported as ``path:line: field: message``.
Nothing downstream runs on an invalid spec: :func:`load_index` raises :class:`SpecInvalid`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from runner.core.errors import Problem, SpecInvalid
from runner.core.paths import spec_dir
from runner.core.yamlio import MAX_BYTES, YamlDoc, YamlProblem, parse_yaml_bytes, read_capped
from runner.spec.models import (
    COUNTRIES,
    COUNTRIES_FILE,
    KINDS,
    Prompt,
    Scene,
    Strategy,
    Value,
    ValueSystem,
    _Doc,
    content_hash,
    read_countries,
)

LOCK_FILE = "spec.lock.json"
DEFAULT_VALUE_SYSTEM = "schwartz10"
DEFAULT_PROMPT = "judgment"


@dataclass(frozen=True)
class SpecIndex:
    """All spec documents, validated and cross-referenced. Scenes are sorted by id."""

    root: Path
    value_system: ValueSystem
    scenes: dict[str, Scene]
    strategies: dict[str, Strategy]
    prompts: dict[str, Prompt]
    hashes: dict[str, tuple[int, str]]
    """``"<kind>/<id>"`` → (version, content hash)."""
    files: dict[str, str] = field(default_factory=dict)
    """``"<kind>/<id>"`` → path relative to the spec root's parent (for messages)."""
    lines: dict[str, dict[tuple[str | int, ...], int]] = field(default_factory=dict)
    """``"<kind>/<id>"`` → line of each field (for messages of later checks)."""
    countries: dict[str, str] = field(default_factory=dict)
    """Country code → name, from ``<root>/countries.yaml``."""

    @property
    def values(self) -> list[Value]:
        """The values in circle order."""
        return sorted(self.value_system.values, key=lambda v: v.circle_index)

    @property
    def value_ids(self) -> list[str]:
        """Value ids in circle order (the column order of every value-state array)."""
        return [v.id for v in self.values]

    @property
    def micro_to_value(self) -> dict[str, str]:
        """Micro-value id → value id."""
        return {m.id: v.id for v in self.value_system.values for m in v.micro_values}

    def value(self, value_id: str) -> Value:
        """Return one value by id."""
        return next(v for v in self.value_system.values if v.id == value_id)

    def scenes_in(self, split: str | None) -> list[Scene]:
        """Scenes of one split (or all when ``split`` is None / 'all'), sorted by id."""
        return [s for s in self.scenes.values() if split in (None, "all") or s.split.value == split]

    def version_tag(self, kind: str, doc_id: str) -> str:
        """``id@version#hash`` for provenance records."""
        version, digest = self.hashes[f"{kind}/{doc_id}"]
        return f"{doc_id}@{version}#{digest}"


# ---------------------------------------------------------------- reading


def _pydantic_problems(exc: ValidationError, doc: YamlDoc) -> list[Problem]:
    """Turn pydantic errors into one Problem per error, with the line of the offending field."""
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        field_name = ".".join(str(p) for p in loc) or "(document)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field; remove it or check its spelling"
        elif err["type"] == "missing":
            msg = "required field is missing; add it"
        elif err["type"] == "literal_error":
            msg = f"{msg} (got {err.get('input')!r})"
        elif err["type"] == "string_pattern_mismatch" and loc and loc[-1] == "id":
            # Ids become file names, SQL values and URL parts: say what a valid one looks like.
            msg = (
                f"{err.get('input')!r} is not a valid id; use lowercase letters, digits, '_' and '-' "
                "(no '/', '..', '.' or spaces), starting with a letter or digit"
            )
        problems.append(Problem(doc.path, doc.line_of(loc), field_name, msg))
    return problems


def _read_docs(root: Path) -> tuple[dict[str, list[tuple[_Doc, YamlDoc]]], list[Problem]]:
    """Read every YAML file under each kind folder of ``root`` and validate it against its model."""
    docs: dict[str, list[tuple[_Doc, YamlDoc]]] = defaultdict(list)
    problems: list[Problem] = []
    base = root.parent
    for kind, model in KINDS.items():
        folder = root / kind
        if not folder.is_dir():
            problems.append(Problem(_rel(folder, base), 0, "", f"folder is missing; create spec/{kind}/"))
            continue
        for file in sorted(folder.rglob("*.y*ml")):
            shown = _rel(file, base)
            try:
                raw = read_capped(file, shown, MAX_BYTES)
                digest = hashlib.sha256(raw).digest()
                seen = _PARSED.get((kind, digest))
                if seen is not None:  # the same bytes validated before: only the path differs
                    docs[kind].append((seen[0], dataclasses.replace(seen[1], path=shown)))
                    continue
                ydoc = parse_yaml_bytes(raw, shown)
            except YamlProblem as exc:
                problems.append(exc.problem)
                continue
            if not isinstance(ydoc.data, dict):
                problems.append(Problem(shown, 1, "", "expected a YAML mapping at the top of the file"))
                continue
            try:
                doc = model.model_validate(ydoc.data)
            except ValidationError as exc:
                problems.extend(_pydantic_problems(exc, ydoc))
                continue
            docs[kind].append((doc, ydoc))
            _PARSED[(kind, digest)] = (doc, ydoc)
    return docs, problems


_PARSED: dict[tuple[str, bytes], tuple[_Doc, YamlDoc]] = {}
"""Documents that parsed and validated, by kind and the SHA-256 of their bytes, for this process.

`vat validate` reads the live spec and every release's frozen copy, which repeat most files byte for
byte (v0.2's copy is today's spec): each distinct file is parsed once. Models are never mutated after
loading, so sharing them between indexes is safe; a problem is never cached (it is found again)."""


def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- cross-checks


def _check_values(vs: ValueSystem, ydoc: YamlDoc) -> list[Problem]:
    """Circle indices form 0..n-1, opposites and groups resolve, micro-value ids are unique."""
    out = []
    ids = [v.id for v in vs.values]
    group_ids = {g.id for g in vs.groups}
    if sorted(v.circle_index for v in vs.values) != list(range(len(ids))):
        out.append(ydoc.problem(("values",), "circle_index must be 0..n-1, each once"))
    micro = Counter(m.id for v in vs.values for m in v.micro_values)
    for i, v in enumerate(vs.values):
        if v.opposite not in ids:
            out.append(ydoc.problem(("values", i, "opposite"), f"unknown value {v.opposite!r}"))
        for g in v.groups:
            if g not in group_ids:
                out.append(ydoc.problem(("values", i, "groups"), f"unknown group {g!r}"))
    for m, n in micro.items():
        if n > 1:
            out.append(
                Problem(
                    ydoc.path, 0, "micro_values", f"micro-value {m!r} is listed {n} times; ids must be unique"
                )
            )
    if len(set(ids)) != len(ids):
        out.append(Problem(ydoc.path, 0, "values", "value ids must be unique"))
    return out


def check_scene(
    scene: Scene,
    ydoc: YamlDoc,
    value_ids: list[str],
    micro_to_value: dict[str, str],
    countries: Collection[str] | None = None,
) -> list[Problem]:
    """References resolve, action ids are unique, and every value has one express and one suppress action.

    ``countries``: the spec's country codes (default: the shipped spec/countries.yaml).
    """
    out = []
    known = COUNTRIES if countries is None else countries
    if scene.country not in known:
        out.append(
            ydoc.problem(
                ("country",),
                f"unknown country {scene.country!r}; use one of {', '.join(known)}, or add "
                f"`{scene.country}: <name>` to spec/{COUNTRIES_FILE}",
            )
        )
    seen: Counter[str] = Counter()
    for i, a in enumerate(scene.actions):
        seen[a.id] += 1
        if a.value not in value_ids:
            out.append(
                ydoc.problem(
                    ("actions", i, "value"), f"unknown value {a.value!r}; use one of {', '.join(value_ids)}"
                )
            )
        if a.micro_value is not None:
            owner = micro_to_value.get(a.micro_value)
            if owner is None:
                out.append(
                    ydoc.problem(
                        ("actions", i, "micro_value"),
                        f"unknown micro-value {a.micro_value!r}; see spec/values/",
                    )
                )
            elif owner != a.value:
                out.append(
                    ydoc.problem(
                        ("actions", i, "micro_value"),
                        f"micro-value {a.micro_value!r} belongs to {owner!r}, not {a.value!r}",
                    )
                )
    for action_id, n in seen.items():
        if n > 1:
            out.append(ydoc.problem(("actions",), f"action id {action_id!r} is used {n} times"))
    out.extend(completeness(scene, ydoc, value_ids))
    return out


def completeness(scene: Scene, ydoc: YamlDoc, value_ids: list[str]) -> list[Problem]:
    """Report each (value, polarity) of the scene that has no action."""
    have = {(a.value, a.polarity.value) for a in scene.actions}
    missing = [f"{v}/{p}" for v in value_ids for p in ("express", "suppress") if (v, p) not in have]
    if not missing:
        return []
    return [
        ydoc.problem(
            ("actions",), f"incomplete: no action for {', '.join(missing)}; add one per value and polarity"
        )
    ]


def id_matches_path(kind: str, doc: _Doc, ydoc: YamlDoc) -> list[Problem]:
    """A document's ``id`` is its path: ``<kind>/<id>.yaml``; a scene's ``<country>/<topic>[-n].yaml``."""
    path = Path(ydoc.path)
    if kind != "scenarios":
        if doc.id == path.stem:
            return []
        problem = f"id {doc.id!r} disagrees with the file's path; rename the file to {doc.id}{path.suffix} or set `id: {path.stem}`"
        return [ydoc.problem(("id",), problem)]
    scene: Scene = doc  # type: ignore[assignment]
    folder, stem = path.parent.name, path.stem
    out = []
    if folder != scene.country:
        out.append(
            ydoc.problem(
                ("country",),
                f"country {scene.country!r} but the file is under {folder}/; move it to spec/scenarios/"
                f"{scene.country}/ or set `country: {folder}`",
            )
        )
    if not re.fullmatch(rf"{re.escape(scene.topic)}(-[0-9]+)?", stem):
        out.append(
            ydoc.problem(
                ("topic",),
                f"topic {scene.topic!r} but the file is {path.name}; name it {scene.topic}.yaml "
                f"(or {scene.topic}-<n>.yaml for another scene of the cell)",
            )
        )
    if doc.id != f"{folder}-{stem}":
        out.append(
            ydoc.problem(
                ("id",),
                f"id {doc.id!r} disagrees with the file's path; set `id: {folder}-{stem}` "
                "(a scene at spec/scenarios/<country>/<topic>[-n].yaml has id <country>-<topic>[-n])",
            )
        )
    return out


def unreviewed_problems(index: SpecIndex) -> list[Problem]:
    """A scene in spec/ must not still list the review notes `vat generate` / `vat import` left in it.

    A `vat validate` check (not a load check): a contributor may run a draft before finishing its review.
    """
    out = []
    for scene in index.scenes.values():
        notes = (scene.generated or {}).get("review")
        if notes:
            key = f"scenarios/{scene.id}"
            line = index.lines.get(key, {}).get(("generated", "review"), 1)
            first = str(notes[0] if isinstance(notes, list) else notes)
            n = len(notes) if isinstance(notes, list) else 1
            out.append(
                Problem(
                    index.files.get(key, key),
                    line,
                    "generated.review",
                    f"the draft still lists {n} review note(s) (first: {first[:80]!r}); resolve each, "
                    "then delete `review:` from `generated`",
                )
            )
    return out


def _check_lock(
    root: Path, hashes: dict[str, tuple[int, str]], files: dict[str, str], strict: bool
) -> list[Problem]:
    """Changed content with an unchanged version is an error; with ``strict``, unrecorded entries are too."""
    lock_path = root / LOCK_FILE
    lock = json.loads(lock_path.read_text()) if lock_path.exists() else {}
    out = []
    for key, (version, digest) in sorted(hashes.items()):
        recorded = lock.get(key)
        path = files.get(key, key)
        if recorded is None:
            if not strict:
                continue
            out.append(
                Problem(
                    path,
                    1,
                    "version",
                    f"{key}@{version} is not in spec/{LOCK_FILE}; run `vat validate --update-lock`",
                )
            )
        elif version == recorded["version"] and digest != recorded["hash"]:
            out.append(
                Problem(
                    path,
                    1,
                    "version",
                    f"content changed but version is still {version}; bump version to {version + 1}",
                )
            )
        elif version < recorded["version"]:
            out.append(
                Problem(
                    path,
                    1,
                    "version",
                    f"version {version} is lower than the recorded {recorded['version']}; versions only go up",
                )
            )
        elif version > recorded["version"] and strict:
            out.append(
                Problem(
                    path,
                    1,
                    "version",
                    f"{key}@{version} is new; run `vat validate --update-lock` to record it",
                )
            )
    return out


def write_lock(index: SpecIndex) -> Path:
    """Record (version, hash) of every document in ``spec/spec.lock.json`` (after a version bump)."""
    path = index.root / LOCK_FILE
    payload = {k: {"version": v, "hash": h} for k, (v, h) in sorted(index.hashes.items())}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)  # atomic: a crash never leaves a half-written lock
    return path


# ---------------------------------------------------------------- entry points


def collect(
    root: Path | str = "spec", check_lock: bool = True, strict_lock: bool = True
) -> tuple[SpecIndex | None, list[Problem]]:
    """Load the spec tree and return (index or None, every problem found).

    ``check_lock`` compares contents with ``spec/spec.lock.json`` (changed content needs a new version);
    ``strict_lock`` also requires every document to be recorded there (what `vat validate` and CI ask).
    """
    root = spec_dir(root)  # the default `spec` falls back to the shipped spec outside a checkout
    if not root.is_dir():
        return None, [
            Problem(str(root), 0, "", "spec folder not found; run from the project root or set spec_dir=")
        ]
    docs, problems = _read_docs(root)
    countries, country_problems = read_countries(root)
    problems += country_problems
    hashes: dict[str, tuple[int, str]] = {}
    files: dict[str, str] = {}
    lines: dict[str, dict[tuple[str | int, ...], int]] = {}
    by_kind: dict[str, dict[str, _Doc]] = defaultdict(dict)
    for kind, items in docs.items():
        for doc, ydoc in items:
            key = f"{kind}/{doc.id}"
            if key in files:
                problems.append(
                    ydoc.problem(
                        ("id",), f"duplicate id {doc.id!r} (also in {files[key]}); ids must be unique"
                    )
                )
                continue
            problems.extend(id_matches_path(kind, doc, ydoc))
            files[key] = ydoc.path
            lines[key] = ydoc.lines
            hashes[key] = (doc.version, content_hash(doc))
            by_kind[kind][doc.id] = doc
    systems = by_kind.get("values", {})
    vs = systems.get(DEFAULT_VALUE_SYSTEM)
    if vs is None:
        problems.append(
            Problem(str(root / "values"), 0, "", f"value system {DEFAULT_VALUE_SYSTEM!r} is missing")
        )
        return None, problems
    vs_doc = next(y for d, y in docs["values"] if d.id == vs.id)
    problems.extend(_check_values(vs, vs_doc))
    value_ids = [v.id for v in sorted(vs.values, key=lambda v: v.circle_index)]
    micro = {m.id: v.id for v in vs.values for m in v.micro_values}
    for doc, ydoc in docs.get("scenarios", []):
        # A missing or broken country list is reported once; the scenes are then checked against the shipped one.
        problems.extend(check_scene(doc, ydoc, value_ids, micro, countries or None))  # type: ignore[arg-type]
    if DEFAULT_PROMPT not in by_kind.get("prompts", {}):
        problems.append(Problem(str(root / "prompts"), 0, "", f"prompt {DEFAULT_PROMPT!r} is missing"))
    if check_lock:
        problems.extend(_check_lock(root, hashes, files, strict_lock))
    index = SpecIndex(
        root=root,
        value_system=vs,
        scenes=dict(sorted(by_kind.get("scenarios", {}).items())),  # type: ignore[arg-type]
        strategies=dict(sorted(by_kind.get("strategies", {}).items())),  # type: ignore[arg-type]
        prompts=dict(by_kind.get("prompts", {})),  # type: ignore[arg-type]
        hashes=hashes,
        files=files,
        lines=lines,
        countries=countries,
    )
    return index, sorted(set(problems))


def load_index(root: Path | str = "spec", check_lock: bool = True) -> SpecIndex:
    """Load and validate the spec tree for a run; raise :class:`SpecInvalid` listing every problem.

    Documents not yet recorded in the lock are accepted here (a contributor can run a new scene before
    recording it); content changed under a recorded version is not.
    """
    index, problems = collect(root, check_lock=check_lock, strict_lock=False)
    if problems or index is None:
        # Name a content problem first: "bump the version" is noise while the file itself is broken.
        content = [p for p in problems if not _is_lock_problem(p)]
        raise SpecInvalid(content or problems)
    return index


def _is_lock_problem(problem: Problem) -> bool:
    """Whether ``problem`` comes from the version lock (:func:`_check_lock`), not from the file's content."""
    return problem.field == "version" and any(
        hint in problem.message for hint in (LOCK_FILE, "update-lock", "bump version", "versions only go up")
    )
