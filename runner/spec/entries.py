"""Model entries and releases: ``leaderboard/entries/<org>__<model>.yaml``, ``leaderboard/releases/<r>.yaml``.

An **entry** names a judged model: its LiteLLM model string, generation parameters, and the public facts
shown on the site (display name, provider, licence, link, contact). Its id is the file's stem, so the id
can never disagree with the file; ids are path-safe slugs because they become file names and URL parts.
Each entry is also a Hydra ``model`` option under its own id (``vat run model=openai__gpt-4o-mini``),
registered in Hydra's ConfigStore by :func:`runner.config.register_entries`; the hand-written ``conf/model/*.yaml``
options keep working beside them (entry ids contain ``__``, which those names never do).

A **release** fixes what a leaderboard scores: pinned test scenes (``id@version``), the pinned train
scenes few-shot demonstrations are drawn from, pinned strategies, prompt and value system, targets with
directions, metric parameters and the text the site shows; a scene added later changes none of it. Releases are frozen: when a
pinned scene changes version, the release can no longer be compiled from this spec tree, and
``vat validate`` says so (publish a new release and mark the old one ``status: archived``).

Contributed files are read with :func:`runner.core.yamlio.read_yaml` (safe loader, no aliases, size cap) and
every problem is a :class:`~runner.core.errors.Problem` with file and line. No DuckDB, no LiteLLM here.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from runner.core.errors import Problem, VatError
from runner.core.paths import conf_dir, leaderboard_dir
from runner.core.yamlio import YamlProblem, read_yaml
from runner.spec.params import MetricsConf

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9_.-]{0,118}[a-z0-9])?$")
"""File-stem ids: lowercase letters, digits, '_', '.', '-'; no '/', no '..', no leading/trailing dot."""
PIN = r"^[a-z0-9][a-z0-9_\-]{0,79}@[1-9][0-9]{0,5}$"
_URL = re.compile(r"^https?://[^\s<>\"'`]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

Pin = Annotated[str, StringConstraints(pattern=PIN)]
"""A pinned spec document: ``<id>@<version>``."""
Text = Annotated[str, StringConstraints(min_length=1, max_length=120, strip_whitespace=True)]


def check_slug(kind: str, ident: str) -> str:
    """Return ``ident`` if it is a safe file-stem id, else raise a VatError naming the rule."""
    if not SLUG.fullmatch(ident) or ".." in ident:
        raise VatError(
            f"{kind} id {ident!r} is not allowed: use lowercase letters, digits, '_', '.' and '-' "
            "(no '/', no '..', not starting or ending with a dot)",
            2,
        )
    return ident


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- entries


class GenParams(_Strict):
    """Generation parameters of an entry: all of them enter the request key."""

    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(3, ge=1, le=4096)
    logprobs: bool = True
    top_logprobs: int = Field(5, ge=0, le=20)
    samples: int = Field(1, ge=1, le=100)
    seed: int | None = None
    extra: dict[str, str | int | float | bool] = Field(default_factory=dict)


class Entry(_Strict):
    """A leaderboard model entry (the file's stem is its id)."""

    id: str
    model: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+/\S{1,200}$")]
    """The LiteLLM model string, e.g. ``openai/gpt-4o-mini``."""
    display_name: Text
    provider: Text
    licence: Annotated[str, StringConstraints(min_length=1, max_length=80, strip_whitespace=True)]
    link: str
    contact: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
    parameters: GenParams = Field(default_factory=GenParams)
    api_key_env: (
        Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,62}_(API_KEY|TOKEN)$")] | None
    ) = None
    """Name of the environment variable that holds the key (``*_API_KEY`` or ``*_TOKEN``, so an entry
    cannot aim another secret of the maintainer's environment at the provider); never the key itself."""
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not SLUG.fullmatch(v) or ".." in v or "__" not in v:
            raise ValueError(
                "the file name must be <org>__<model>.yaml in lowercase letters, digits, '_', '.', '-'"
            )
        return v

    @field_validator("link")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        # Only http(s): the link becomes an href on the site, and javascript: URLs would run there.
        if v is not None and not _URL.fullmatch(v):
            raise ValueError("must be an http:// or https:// URL")
        return v

    @field_validator("display_name", "provider", "licence", "contact", "description")
    @classmethod
    def _printable(cls, v: str | None) -> str | None:
        if v is not None and _CONTROL.search(v):
            raise ValueError("control characters are not allowed")
        return v

    @property
    def provider_prefix(self) -> str:
        """The LiteLLM provider of the model string (``openai`` in ``openai/gpt-4o-mini``)."""
        return self.model.split("/", 1)[0]

    def model_conf(self) -> dict[str, Any]:
        """The entry as a ``model`` config group node (the fields of runner.config.ModelConf).

        The endpoint is never the entry's: it is the maintainer's ``VAT_API_BASE_<PROVIDER>`` (see
        :func:`maintainer_api_base`), or the provider's default.
        """
        p = self.parameters
        return {
            "name": self.model,
            "api_base": maintainer_api_base(self.provider_prefix),
            "api_key_env": self.api_key_env,
            "display_name": self.display_name,
            "temperature": p.temperature,
            "max_tokens": p.max_tokens,
            "logprobs": p.logprobs,
            "top_logprobs": p.top_logprobs,
            "samples": p.samples,
            "seed": p.seed,
            "extra": dict(p.extra),
        }


def api_base_variable(provider: str) -> str:
    """The environment variable that holds the maintainer's endpoint for ``provider`` (``VAT_API_BASE_OPENAI``)."""
    return "VAT_API_BASE_" + re.sub(r"[^A-Z0-9]", "_", provider.upper())


def maintainer_api_base(provider: str) -> str | None:
    """The endpoint the maintainer configured for ``provider`` outside every entry, or None (the default)."""
    import os

    return os.environ.get(api_base_variable(provider)) or None


ENTRY_ROUTING_FIELDS = frozenset({"custom_llm_provider", "api_version", "organization", "deployment_id"})
"""Provider parameters that change where a request goes or which account pays: the maintainer's to set."""


def forbidden_entry_fields(data: dict[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """(location, reason) of every field an entry may not set: endpoints, keys, headers, routing.

    An entry is written by a submitter, and its model is run with the maintainer's key (``vat verify
    replay=``): an ``api_base`` (top level or under ``parameters.extra``) would send that key to the
    submitter's server, and a header or key field would replace it. Checked before the schema, with
    a message that names the fix, at any depth of ``parameters``.
    """
    from runner.core.secrets import ENDPOINT_FIELDS, is_secret_field

    def reason(key: str) -> str | None:
        if key == "api_key_env":
            return None
        if key in ENDPOINT_FIELDS or key.startswith("api_base"):
            return (
                "an entry cannot choose the endpoint (it would receive the maintainer's key); the "
                f"maintainer sets it outside the entry with {api_base_variable('<provider>')}"
            )
        if is_secret_field(key):
            return "an entry cannot hold keys or headers; name the key's variable with api_key_env"
        if key in ENTRY_ROUTING_FIELDS:
            return "an entry cannot change the provider's routing or account"
        return None

    out: list[tuple[tuple[str, ...], str]] = []

    def walk(node: Any, loc: tuple[str, ...]) -> None:
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            why = reason(str(key))
            if why:
                out.append(((*loc, str(key)), why))
            elif loc or key == "parameters":
                walk(value, (*loc, str(key)))

    walk(data, ())
    return out


# ---------------------------------------------------------------- releases


class Condition(_Strict):
    """One scored (target value, direction)."""

    target: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_\-]{0,79}$")]
    direction: Literal["reinforce", "suppress"]


class Release(_Strict):
    """What one leaderboard release scores (the file's stem is its id)."""

    id: str
    title: Text
    description: Annotated[str, StringConstraints(min_length=1, max_length=4000)]
    status: Literal["active", "archived"] = "active"
    value_system: Pin
    prompt: Pin
    scenes: list[Pin] = Field(min_length=5)
    train_scenes: list[Pin] = Field(default_factory=list)
    """The train scenes few-shot demonstrations are drawn from: pinned, so new train scenes change nothing."""
    strategies: list[Pin] = Field(min_length=1)
    targets: list[Condition] = Field(min_length=1)
    metrics: dict[str, Any] = Field(default_factory=dict)
    """Overrides of runner.config.MetricsConf (``metrics.*``) used to score this release."""

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not SLUG.fullmatch(v) or ".." in v:
            raise ValueError(
                "the file name must be lowercase letters, digits, '_', '.', '-' (e.g. v0.1.yaml)"
            )
        return v

    @field_validator("scenes", "train_scenes", "strategies")
    @classmethod
    def _unique_ids(cls, v: list[str]) -> list[str]:
        ids = [p.split("@")[0] for p in v]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"listed more than once: {', '.join(dup)}")
        return v

    @field_validator("targets")
    @classmethod
    def _unique_targets(cls, v: list[Condition]) -> list[Condition]:
        pairs = [(c.target, c.direction) for c in v]
        if len(set(pairs)) != len(pairs):
            raise ValueError("a (target, direction) pair is listed more than once")
        return v

    @field_validator("metrics")
    @classmethod
    def _metric_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        known = {f.name: f for f in dataclasses.fields(MetricsConf)}
        for key, value in v.items():
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1)
                raise ValueError(
                    f"unknown metric parameter {key!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                )
            default = known[key].default
            if isinstance(default, bool | int | float | str) and not _same_kind(default, value):
                raise ValueError(f"metric parameter {key!r} must be like {default!r}, got {value!r}")
        return v

    @property
    def scene_ids(self) -> list[str]:
        """The pinned scene ids (without versions), in file order."""
        return [p.split("@")[0] for p in self.scenes]

    @property
    def train_scene_ids(self) -> list[str]:
        """The pinned train scene ids (without versions), in file order."""
        return [p.split("@")[0] for p in self.train_scenes]

    @property
    def strategy_ids(self) -> list[str]:
        """The pinned strategy ids (without versions), in file order."""
        return [p.split("@")[0] for p in self.strategies]


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float) and (isinstance(default, float) or isinstance(value, int))
    return isinstance(value, type(default))


# ---------------------------------------------------------------- reading


def _read(path: Path, model: type[BaseModel], base: Path) -> tuple[Any | None, list[Problem]]:
    """Read one entry or release file; the id comes from the file stem."""
    from runner.spec.load import _pydantic_problems

    shown = _shown(path, base)
    try:
        ydoc = read_yaml(path, shown)
    except YamlProblem as exc:
        return None, [exc.problem]
    if not isinstance(ydoc.data, dict):
        return None, [Problem(shown, 1, "", "expected a YAML mapping at the top of the file")]
    if "id" in ydoc.data:
        return None, [
            Problem(shown, ydoc.line_of(("id",)), "id", "remove it: the id is the file name's stem")
        ]
    if model is Entry and (forbidden := forbidden_entry_fields(ydoc.data)):
        return None, [Problem(shown, ydoc.line_of(loc), ".".join(loc), why) for loc, why in forbidden]
    try:
        return model.model_validate({"id": path.stem, **ydoc.data}), []
    except ValidationError as exc:
        problems = _pydantic_problems(exc, ydoc)
        return None, [Problem(p.path, p.line if p.field != "id" else 1, p.field, p.message) for p in problems]


def _shown(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def load_entries(root: Path | None = None) -> tuple[dict[str, Entry], list[Problem]]:
    """Every valid entry under ``<root>/entries`` by id, and the problems of the invalid ones."""
    return _load_all(root, "entries", Entry)  # type: ignore[return-value]


def load_releases(root: Path | None = None) -> tuple[dict[str, Release], list[Problem]]:
    """Every valid release under ``<root>/releases`` by id, and the problems of the invalid ones."""
    return _load_all(root, "releases", Release)  # type: ignore[return-value]


def _load_all(root: Path | None, kind: str, model: type[BaseModel]) -> tuple[dict[str, Any], list[Problem]]:
    root = root or leaderboard_dir()
    folder = root / kind
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    if not folder.is_dir():
        return out, problems
    for path in sorted(folder.iterdir()):
        if path.suffix == ".yml":
            problems.append(Problem(_shown(path, root.parent), 1, "", "rename the file to .yaml"))
        if path.suffix != ".yaml":
            continue
        doc, found = _read(path, model, root.parent)
        problems += found
        if doc is not None:
            out[doc.id] = doc
    return out, problems


def get_entry(entry_id: str, root: Path | None = None) -> Entry:
    """The entry ``entry_id``; a clear error (with a did-you-mean) when it is missing or invalid."""
    return _get(check_slug("entry", entry_id), "entries", Entry, root)  # type: ignore[return-value]


def get_release(release_id: str, root: Path | None = None) -> Release:
    """The release ``release_id``; a clear error (with a did-you-mean) when it is missing or invalid."""
    return _get(check_slug("release", release_id), "releases", Release, root)  # type: ignore[return-value]


def _get(ident: str, kind: str, model: type[BaseModel], root: Path | None) -> Any:
    root = root or leaderboard_dir()
    path = root / kind / f"{ident}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (root / kind).glob("*.yaml")) if (root / kind).is_dir() else []
        close = difflib.get_close_matches(ident, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise VatError(
            f"no {kind[:-1] if kind == 'releases' else 'entry'} {ident!r} in {root / kind}/; {hint}"
            f"known: {', '.join(known) or 'none'}",
            2,
        )
    doc, problems = _read(path, model, root.parent)
    if problems:
        raise VatError(f"{problems[0]} (run `vat validate`)", 1)
    return doc


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def doc_sha256(doc: BaseModel) -> str:
    """SHA-256 of a document's canonical JSON (comments and formatting do not count)."""
    blob = json.dumps(doc.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- Hydra


# ---------------------------------------------------------------- validation against the spec


def release_problems(release: Release, index: Any, path: str, file: Path | None = None) -> list[Problem]:
    """Cross-check a release against the spec index: pins resolve at their versions, targets are values.

    With ``file`` (the release's YAML), each problem carries the line of the offending item.
    """
    if release.status == "archived":
        return []  # frozen at an older spec: verified from its git tag, not from this tree
    lines = _lines(file)

    def line(*loc: str | int) -> int:
        while loc and loc not in lines:
            loc = loc[:-1]
        return lines.get(loc, 1)

    out = []
    pins = [
        ("value_system", "values", release.value_system, ("value_system",)),
        ("prompt", "prompts", release.prompt, ("prompt",)),
    ]
    pins += [(f"scenes.{i}", "scenarios", p, ("scenes", i)) for i, p in enumerate(release.scenes)]
    pins += [
        (f"train_scenes.{i}", "scenarios", p, ("train_scenes", i)) for i, p in enumerate(release.train_scenes)
    ]
    pins += [
        (f"strategies.{i}", "strategies", p, ("strategies", i)) for i, p in enumerate(release.strategies)
    ]
    for field, kind, pin, loc in pins:
        ident, version = pin.split("@")
        have = index.hashes.get(f"{kind}/{ident}")
        if have is None:
            out.append(Problem(path, line(*loc), field, f"{pin}: no such document in spec/{kind}/"))
        elif have[0] != int(version):
            out.append(
                Problem(
                    path,
                    line(*loc),
                    field,
                    f"{pin} is pinned but spec/ has {ident}@{have[0]}; releases are frozen: publish a new "
                    "release file and set `status: archived` on this one",
                )
            )
    out += _split_problems(release, index, path, line)
    for i, sid in enumerate(release.strategy_ids):
        strategy = index.strategies.get(sid)
        if strategy is not None and strategy.kind.value in ("baseline", "checkpoint"):
            out.append(
                Problem(
                    path,
                    line("strategies", i),
                    f"strategies.{i}",
                    f"{sid} cannot be scored by a release (kind {strategy.kind.value})",
                )
            )
    for i, c in enumerate(release.targets):
        if c.target not in index.value_ids:
            out.append(
                Problem(
                    path,
                    line("targets", i, "target"),
                    f"targets.{i}.target",
                    f"unknown value {c.target!r}; use one of {', '.join(index.value_ids)}",
                )
            )
    return out


def _split_problems(release: Release, index: Any, path: str, line: Callable[..., int]) -> list[Problem]:
    """Test pins are test scenes, train pins train scenes, and few-shot strategies have train pins."""
    out = []
    for field, ids, split in (
        ("scenes", release.scene_ids, "test"),
        ("train_scenes", release.train_scene_ids, "train"),
    ):
        for i, sid in enumerate(ids):
            scene = index.scenes.get(sid)
            if scene is not None and scene.split.value != split:
                out.append(
                    Problem(
                        path,
                        line(field, i),
                        f"{field}.{i}",
                        f"{sid} is a {scene.split.value} scene; list it under "
                        f"{'train_scenes' if split == 'test' else 'scenes'}",
                    )
                )
    fewshot = [
        s
        for s in release.strategy_ids
        if s in index.strategies and index.strategies[s].kind.value == "fewshot"
    ]
    if fewshot and not release.train_scenes:
        out.append(
            Problem(
                path,
                line("strategies"),
                "train_scenes",
                f"{fewshot[0]} draws demonstrations from train scenes, "
                "but the release pins none; add `train_scenes:` (printed by `vat leaderboard release-scenes`)",
            )
        )
    return out


def _lines(file: Path | None) -> dict[tuple[str | int, ...], int]:
    if file is None or not file.is_file():
        return {}
    try:
        return read_yaml(file).lines
    except YamlProblem:
        return {}


def leaderboard_problems(index: Any | None, root: Path | None = None) -> list[Problem]:
    """Every problem of the leaderboard files (what `vat validate` adds to the spec checks)."""
    root = root or leaderboard_dir()
    entries, problems = load_entries(root)
    releases, release_file_problems = load_releases(root)
    problems += release_file_problems
    for entry_id in entries:
        if (conf_dir() / "model" / f"{entry_id}.yaml").exists():
            problems.append(
                Problem(
                    _shown(root / "entries" / f"{entry_id}.yaml", root.parent),
                    1,
                    "id",
                    f"clashes with conf/model/{entry_id}.yaml; rename one of them",
                )
            )
    if index is not None:
        for rel in releases.values():
            file = root / "releases" / f"{rel.id}.yaml"
            problems += release_problems(
                rel, release_index(rel, index, root), _shown(file, root.parent), file
            )
    return problems


def snapshot_dir(release_id: str, root: Path | None = None) -> Path:
    """Where a release's frozen spec lives: ``leaderboard/releases/<release>/spec/`` (see :func:`freeze`)."""
    return (root or leaderboard_dir()) / "releases" / release_id / "spec"


def release_index(release: Release, index: Any, root: Path | None = None) -> Any:
    """The spec index a release is checked and compiled against: its frozen snapshot when it has one.

    A release pins ``id@version``; once a pinned scene gets a new version in ``spec/`` the old content is
    gone from the tree, so a frozen release keeps a copy of what it pins. Without a snapshot the current
    ``index`` is used (a release that was never frozen must still resolve in ``spec/``).
    """
    snap = snapshot_dir(release.id, root)
    if not snap.is_dir():
        return index
    from runner.spec.load import load_index

    return load_index(snap, check_lock=False)


def freeze(release: Release, spec_root: Path, root: Path | None = None) -> tuple[Path, int]:
    """Copy every document ``release`` pins from ``spec_root`` into its snapshot; return (folder, files).

    Values, prompts, strategies, schemas, the country list and the lock are copied whole (small, and
    the compiler reads them); scenes only where pinned (test and train). Refuses to overwrite an
    existing snapshot (a frozen release never changes) and to freeze pins that do not resolve.
    """
    import shutil

    from runner.spec.load import load_index

    snap = snapshot_dir(release.id, root)
    from runner.core.paths import inside_installed_package

    if inside_installed_package(snap.parent):
        raise ValueError(
            f"the leaderboard folder {snap.parent.parent} is the installed package's copy, which is never "
            "written; freeze in a checkout, or point VAT_LEADERBOARD_DIR at your own leaderboard folder"
        )
    if snap.exists():
        raise ValueError(
            f"{_shown(snap, (root or leaderboard_dir()).parent)} exists: a frozen release never changes"
        )
    index = load_index(spec_root, check_lock=False)
    problems = release_problems(release, index, f"leaderboard/releases/{release.id}.yaml")
    if problems:
        raise ValueError(f"{problems[0]}; freeze a release only while spec/ holds what it pins")
    tmp = snap.with_name("spec.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    count = 0
    for item in sorted(spec_root.iterdir()):
        if item.name == "scenarios":
            continue
        if item.is_dir():
            shutil.copytree(item, tmp / item.name)
            count += sum(1 for f in (tmp / item.name).rglob("*") if f.is_file())
        else:
            tmp.mkdir(parents=True, exist_ok=True)
            shutil.copy2(item, tmp / item.name)
            count += 1
    for sid in [*release.scene_ids, *release.train_scene_ids]:
        country, rest = sid.split("-", 1)
        rel = Path("scenarios") / country / f"{rest}.yaml"
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(spec_root / rel, tmp / rel)
        count += 1
    tmp.rename(snap)  # all or nothing: a half-copied snapshot is never seen under the final name
    return snap, count


def release_pins(index: Any, split: str = "test") -> list[str]:
    """``id@version`` of every scene in ``split`` (what a new release pins), sorted by id."""
    return [f"{s.id}@{s.version}" for s in index.scenes_in(split)]


def latest_release(root: Path | None = None) -> Release:
    """The newest active release (by version-aware order of ids)."""
    releases, _ = load_releases(root)
    active = [r for r in releases.values() if r.status == "active"]
    if not active:
        raise VatError(
            f"no active release in {(root or leaderboard_dir()) / 'releases'}/; add one (see CONTRIBUTING.md)",
            1,
        )

    def order(r: Release) -> list[Any]:
        return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[._-]", r.id.lstrip("v"))]

    return max(active, key=order)
