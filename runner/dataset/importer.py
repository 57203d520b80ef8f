"""`vat import`: an external scenario–action dataset → spec-format scene YAML, one file per scene.

The dataset is read with Hugging Face ``datasets`` (a local CSV/TSV/JSON/JSONL/Parquet file, or a Hub
id when the network is allowed). A column mapping in the config says where each of our fields is:
``columns.action: Action`` reads a column, ``columns.value: meta.value`` reads key ``value`` inside
the JSON-encoded (or struct) column ``meta``. Country, topic, value and micro-value names map to our
ids case-insensitively (``"Social power"``, ``"social_power"`` → ``social_power``), polarity labels map
through ``polarity_labels``. Rows that cannot be mapped are counted by reason, with examples; a
dataset without scene text gets one placeholder scene per (country, topic), flagged in the report.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pydantic import ValidationError

from runner.core.errors import VatError
from runner.dataset.draft import (
    Names,
    auto_split,
    check_out_dir,
    norm,
    review_problems,
    scene_ids,
    scene_path,
    write_scene,
)
from runner.spec.load import SpecIndex
from runner.spec.models import COUNTRIES, TOPICS, Action
from runner.spec.quality import PLACEHOLDER_MARK

FIELDS = ("country", "topic", "scene", "scene_id", "value", "micro_value", "polarity", "action", "split")
"""The fields ``columns`` may map; ``scene``, ``scene_id``, ``split`` and one of value/micro_value are optional."""
REQUIRED = ("country", "topic", "polarity", "action")
BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_TEST_LABELS = {"test", "validation", "valid", "val", "dev", "eval"}
_EXAMPLES = 3


# ---------------------------------------------------------------- config


def importer_conf(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """The ``importer`` section: schema defaults < the ``mapping`` file < keys given on the command line."""
    from runner.config import ImportConf

    section = cfg.importer
    if not section.mapping:
        return section
    path = Path(str(section.mapping))
    data = _read_mapping(path)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ImportConf), data)
    except Exception as exc:  # noqa: BLE001 - OmegaConf's errors name the key; we add the file
        first = str(exc).strip().splitlines()[0]
        raise VatError(f"{path}: {first}; see docs/dataset.md for the mapping keys", 2) from None
    if merged.source:
        merged.source = _relative_to(str(merged.source), path.parent)
    for o in overrides:  # what the command line says wins over the file
        key = o.lstrip("+~").split("=", 1)[0]
        if key.startswith("importer.") and key != "importer.mapping":
            OmegaConf.update(merged, key.removeprefix("importer."), OmegaConf.select(cfg, key), merge=False)
    merged.mapping = str(path)
    return merged


def _read_mapping(path: Path) -> dict[str, Any]:
    from runner.core.yamlio import YamlProblem, read_yaml

    if not path.is_file():
        raise VatError(f"importer.mapping={path} is not a file; give the path of a mapping YAML file", 2)
    try:
        data = read_yaml(path).data
    except YamlProblem as exc:
        raise VatError(str(exc.problem), 2) from None
    if not isinstance(data, dict):
        raise VatError(f"{path}: expected a YAML mapping of importer keys (source, columns, ...)", 2)
    if "mapping" in data:
        raise VatError(f"{path}: a mapping file cannot name another mapping file; remove `mapping`", 2)
    return data


def _relative_to(source: str, folder: Path) -> str:
    """A relative ``source`` in a mapping file is read next to that file (when such a file exists)."""
    candidate = folder / source
    return str(candidate) if not Path(source).is_absolute() and candidate.exists() else source


_FENCE = re.compile(r"```[A-Za-z0-9_+-]*")
_MAX_CELL = 200_000
"""Longest cell parsed as a Python literal (``ast.literal_eval`` is not meant for untrusted megabytes)."""


class CellError(ValueError):
    """A JSON/struct cell that could not be read; the message is the reason rows are counted under."""


def parse_cell(text: str, column: str) -> tuple[Any, str]:
    """A cell holding an object: (the object, how it was written); :class:`CellError` says why not.

    Accepted, in this order: JSON; JSON inside Markdown code fences or among prose (the lenient
    extractor `vat generate` uses for model answers); a Python-literal dict (single quotes, True/None),
    read with ``ast.literal_eval``, which evaluates literals only and never runs code.
    """
    import ast

    from runner.dataset.answers import Unusable, extract_json

    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        pass
    else:
        if not isinstance(obj, dict):
            raise CellError(f"column {column!r} holds a {type(obj).__name__}, not an object")
        return obj, "json"
    bare = _FENCE.sub("", text).strip()
    fenced = bare != text.strip()
    try:
        return extract_json(bare), "fenced json" if fenced else "json among text"
    except Unusable:
        pass
    start, end = bare.find("{"), bare.rfind("}")
    if start < 0:
        raise CellError(f"column {column!r} holds no object (no '{{')")
    if end < start:
        raise CellError(f"column {column!r} holds a truncated object (no closing '}}')")
    if end - start > _MAX_CELL:
        raise CellError(f"column {column!r} is not JSON, and too long to read as a Python dict")
    try:
        obj = ast.literal_eval(bare[start : end + 1])
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise CellError(f"column {column!r} is neither JSON nor a Python dict") from None
    if not isinstance(obj, dict):
        raise CellError(f"column {column!r} holds a {type(obj).__name__}, not an object")
    return obj, "fenced python dict" if fenced else "python dict"


@dataclass(frozen=True)
class Column:
    """Where one field is: a column, and a key path inside it when the column holds JSON or a struct."""

    column: str
    keys: tuple[str, ...] = ()

    def read(self, row: dict[str, Any], parsed: dict[str, tuple[Any, str]] | None = None) -> Any:
        """The field's value in ``row``; :class:`CellError` when the column's object cannot be read.

        ``parsed`` caches each column's parsed object (and how it was written) for the row, so a
        column that several fields read is parsed once.
        """
        value = row.get(self.column)
        for depth, key in enumerate(self.keys):
            if isinstance(value, str) and value.strip():
                if depth == 0 and parsed is not None:
                    if self.column not in parsed:
                        parsed[self.column] = parse_cell(value, self.column)
                    value = parsed[self.column][0]
                else:
                    value = parse_cell(value, self.column)[0]
            value = value.get(key) if isinstance(value, dict) else None
        return value


def column_map(columns: dict[str, str], available: list[str]) -> dict[str, Column]:
    """Check the ``columns`` mapping against the dataset's columns; unknown fields or columns fail clearly."""
    import difflib

    unknown = [f for f in columns if f not in FIELDS]
    if unknown:
        raise VatError(f"importer.columns.{unknown[0]}: not a field; map any of: {', '.join(FIELDS)}", 2)
    missing = [f for f in REQUIRED if not columns.get(f)]
    if not (columns.get("value") or columns.get("micro_value")):
        missing.append("value (or micro_value)")
    if missing:
        raise VatError(
            f"importer.columns has no {', '.join(missing)}; map each to a column of the dataset "
            f"({', '.join(available)})",
            2,
        )
    out = {}
    for f, spec in columns.items():
        spec = str(spec)
        if spec in available:
            out[f] = Column(spec)
            continue
        head, *rest = spec.split(".")
        if head not in available:
            close = difflib.get_close_matches(head, available, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise VatError(
                f"importer.columns.{f}={spec!r}: the dataset has no column {head!r}; {hint}"
                f"its columns are: {', '.join(available)}",
                2,
            )
        out[f] = Column(head, tuple(rest))
    return out


def polarity_map(labels: dict[str, str]) -> dict[str, str]:
    """Normalised label → express|suppress (express and suppress always map to themselves)."""
    out = {"express": "express", "suppress": "suppress"}
    for label, polarity in labels.items():
        if polarity not in ("express", "suppress"):
            raise VatError(
                f"importer.polarity_labels.{label}={polarity!r}: map each label to express or suppress", 2
            )
        out[norm(label)] = polarity
    return out


# ---------------------------------------------------------------- reading


def load_rows(section: DictConfig) -> tuple[list[dict[str, Any]], list[str], str]:
    """The dataset's rows, its column names, and where it came from (a file, a folder or a Hub id).

    A local folder is read as the Hub would read that dataset's repository (its README's ``configs``,
    or data files named by split), so a downloaded or hand-made Hub dataset imports offline.
    """
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    source = str(section.source or "")
    if not source:
        raise VatError("no dataset given; set importer.source=<file or hub id> (or source=...)", 2)
    path = Path(source)
    revision = str(section.revision) if section.revision else None
    if path.exists() and revision:
        raise VatError(
            f"importer.revision={revision}: {path} is a local path; a revision pins Hub ids only", 2
        )
    if path.is_dir():
        with tempfile.TemporaryDirectory() as cache:
            try:
                ds = datasets.load_dataset(
                    str(path), section.subset or None, split=str(section.split), cache_dir=cache
                )
            except Exception as exc:  # noqa: BLE001 - a folder the Hub layout cannot read: one line
                raise VatError(
                    f"{path}: could not be read as a Hub dataset folder (split {section.split}): "
                    f"{_first_line(exc)}; give a data file, or set importer.split / importer.subset",
                    1,
                ) from None
            return _rows_of(ds, section), list(ds.column_names), str(path)
    if path.exists():
        builder = BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise VatError(
                f"{path}: cannot read this kind of file; use .csv, .tsv, .json, .jsonl or .parquet", 2
            )
        extra = {"sep": "\t"} if path.suffix.lower() == ".tsv" else {}
        with tempfile.TemporaryDirectory() as cache:  # a local file needs no lasting Arrow cache
            try:
                ds = datasets.load_dataset(
                    builder, data_files=str(path), split="train", cache_dir=cache, **extra
                )
            except Exception as exc:  # noqa: BLE001 - any parser error is the file's problem
                raise VatError(f"{path}: could not be read as {builder}: {_first_line(exc)}", 1) from None
            return _rows_of(ds, section), list(ds.column_names), str(path)
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise VatError(
            f"{source!r} is not a file here, and the Hub is off (HF_HUB_OFFLINE=1); to read a Hub dataset run "
            "with HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 and network access, or give a local file or folder",
            2,
        )
    try:
        ds = datasets.load_dataset(
            source, section.subset or None, split=str(section.split), revision=revision
        )
    except Exception as exc:  # noqa: BLE001 - network, auth, unknown id: one line for the user
        raise VatError(f"could not load {source!r} from the Hub: {_first_line(exc)}", 1) from None
    return _rows_of(ds, section), list(ds.column_names), source + (f"@{revision}" if revision else "")


def _rows_of(ds: Any, section: DictConfig) -> list[dict[str, Any]]:
    """The first ``max_rows`` rows (all when unset) as dicts."""
    limit = int(section.max_rows) if section.max_rows else None
    return ds.select(range(min(limit, len(ds)))).to_list() if limit else ds.to_list()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


# ---------------------------------------------------------------- mapping rows


@dataclass
class Unmapped:
    """Rows that could not be imported, by reason, with a few examples each."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    names: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    """Country and topic names that did not map, with their row counts (every distinct name)."""
    cells: Counter[str] = field(default_factory=Counter)
    """Object cells read, by column and how they were written ("meta: fenced json")."""

    def add(self, reason: str, example: str) -> None:
        """Count one row (or one dropped detail of a row) under ``reason``."""
        self.counts[reason] += 1
        if len(self.examples[reason]) < _EXAMPLES:
            self.examples[reason].append(example)

    def report(self) -> list[dict[str, Any]]:
        """Most frequent reasons first."""
        return [{"reason": r, "rows": n, "examples": self.examples[r]} for r, n in self.counts.most_common()]


@dataclass
class Row:
    """One mapped dataset row: where its action goes and what it says."""

    number: int
    country: str
    topic: str
    scene: str | None
    scene_key: str | None
    value: str
    micro_value: str | None
    polarity: str
    text: str
    split: str | None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def map_row(
    n: int,
    raw: dict[str, Any],
    cols: dict[str, Column],
    names: Names,
    polarities: dict[str, str],
    bad: Unmapped,
) -> Row | None:
    """Map one raw row to our ids; None (and a reason in ``bad``) when it cannot be imported."""
    parsed: dict[str, tuple[Any, str]] = {}
    try:
        got = {f: c.read(raw, parsed) for f, c in cols.items()}
    except CellError as exc:
        bad.add(str(exc), f"row {n}")
        return None
    for column, (_, how) in parsed.items():
        bad.cells[f"{column}: {how}"] += 1
    for f in REQUIRED:
        if _text(got.get(f)) is None:
            bad.add(f"empty {f}", f"row {n}")
            return None
    country = names.country(got["country"])
    topic = names.topic(got["topic"]) or names.topic(bare_module_name(str(got["topic"])))
    for kind, given, ok in (("country", got["country"], country), ("topic", got["topic"], topic)):
        if ok is None:
            bad.add(f"unknown {kind}", f"{_text(given)!r} (row {n})")
            bad.names[kind][_text(given) or ""] += 1
            return None
    polarity = polarities.get(norm(got["polarity"]))
    if polarity is None:
        bad.add(
            "unknown polarity label (map it in importer.polarity_labels)",
            f"{_text(got['polarity'])!r} (row {n})",
        )
        return None
    value, micro = _value_of(n, got, names, bad)
    if value is None:
        return None
    text = _text(got["action"]) or ""
    try:
        Action.model_validate({"id": "x", "value": value, "polarity": polarity, "text": text})
    except ValidationError as exc:
        bad.add(f"action text rejected: {exc.errors()[0]['msg'].removeprefix('Value error, ')}", f"row {n}")
        return None
    split = _text(got.get("split"))
    return Row(
        n,
        country,  # type: ignore[arg-type]
        topic,  # type: ignore[arg-type]
        _text(got.get("scene")),
        _text(got.get("scene_id")),
        value,
        micro,
        polarity,
        text,
        None
        if split is None
        else ("test" if norm(split) in _TEST_LABELS else "train" if norm(split) == "train" else None),
    )


_MODULE_DECOR = re.compile(
    r"^\s*(issp\b)?[\s:_-]*((19|20)\d\d\b)?[\s:_\u2013\u2014-]*|[\s:_-]+((19|20)\d\d|[ivx]+)\s*$",
    re.IGNORECASE,
)


def bare_module_name(text: str) -> str:
    """An ISSP module title without its decorations: 'ISSP 2016 – Role of Government V' → 'Role of Government'."""
    return _MODULE_DECOR.sub("", text).strip()


def topic_aliases(path: Path | None = None) -> dict[str, str]:
    """Alternative topic names shipped as data (``conf/aliases/topics.yaml``: ISSP module titles), name → id."""
    import yaml

    from runner.config import conf_dir

    path = path or conf_dir() / "aliases" / "topics.yaml"
    data = yaml.safe_load(path.read_text()) if path.is_file() else {}
    out: dict[str, str] = {}
    for topic, aliases in (data or {}).items():
        if topic not in TOPICS or not isinstance(aliases, list):
            raise VatError(
                f"{path}: {topic!r} must be a topic id ({', '.join(TOPICS)}) with a list of names", 2
            )
        out.update({str(a): topic for a in aliases})
    return out


def _value_of(n: int, got: dict[str, Any], names: Names, bad: Unmapped) -> tuple[str | None, str | None]:
    """(value id, micro-value id or None) of a row; an unknown micro-value keeps a known value."""
    value_text, micro_text = _text(got.get("value")), _text(got.get("micro_value"))
    if value_text is None and micro_text is None:
        bad.add("empty value and micro_value", f"row {n}")
        return None, None
    value = names.value(value_text) if value_text else None
    if value_text and value is None:
        # A "value" column may hold micro-value names (datasets that only tag micro-values).
        micro_guess = names.micro_value(value_text)
        if micro_guess is None:
            bad.add("unknown value", f"{value_text!r} (row {n})")
            return None, None
        micro_text, value = micro_text or value_text, names.micro_owner[micro_guess]
    micro = names.micro_value(micro_text) if micro_text else None
    if micro_text and micro is None:
        as_value = names.value(micro_text)
        if as_value is not None and value in (None, as_value):
            return as_value, None  # a value name where a micro-value was expected: keep the value
        if value is None:
            bad.add("unknown micro-value", f"{micro_text!r} (row {n})")
            return None, None
        bad.add("unknown micro-value (imported with its value only)", f"{micro_text!r} (row {n})")
        return value, None
    if micro is not None:
        owner = names.micro_owner[micro]
        if value is not None and owner != value:
            bad.add(
                "micro-value belongs to another value", f"{micro_text!r} is {owner}, not {value} (row {n})"
            )
            return None, None
        value = owner
    return value, micro


# ---------------------------------------------------------------- scenes


def placeholder_text(country: str, topic: str) -> str:
    """The scene text of a dataset without scenes: says what it is, and passes the length checks.

    It begins with :data:`runner.spec.quality.PLACEHOLDER_MARK`, so `vat validate` flags it until replaced.
    """
    return (
        f"{PLACEHOLDER_MARK}{COUNTRIES[country]}, topic {TOPICS[topic].lower()}: the imported dataset "
        "gives these actions without a situation. Replace this text with a realistic scene of two to five "
        "sentences, set there, before the scene is used in a run."
    )


def group_scenes(rows: list[Row]) -> dict[tuple[str, str, str], list[Row]]:
    """Rows by scene: (country, topic, scene id or text, or '' for a placeholder), in first-seen order."""
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.country, r.topic, r.scene_key or r.scene or ""), []).append(r)
    return groups


def build_doc(
    scene_id: str,
    key: tuple[str, str, str],
    rows: list[Row],
    default_split: str,
    origin: dict[str, Any],
    bad: Unmapped,
) -> dict[str, Any]:
    """One scene document from its rows (duplicate actions dropped and counted)."""
    country, topic, _ = key
    text = next((r.scene for r in rows if r.scene), None)
    placeholder = text is None
    actions: list[dict[str, Any]] = []
    seen_ids: Counter[str] = Counter()
    seen: set[tuple[str, str | None, str, str]] = set()
    for r in rows:
        sig = (r.value, r.micro_value, r.polarity, r.text.lower())
        if sig in seen:
            bad.add("duplicate action in its scene", f"row {r.number}")
            continue
        seen.add(sig)
        base = f"{r.micro_value or r.value}-{r.polarity}"
        seen_ids[base] += 1
        action = {
            "id": base if seen_ids[base] == 1 else f"{base}-{seen_ids[base]}",
            "value": r.value,
            **({"micro_value": r.micro_value} if r.micro_value else {}),
            "polarity": r.polarity,
            "text": r.text,
        }
        actions.append(action)
    split = next((r.split for r in rows if r.split), None)
    if split is None:
        split = auto_split(scene_id) if default_split == "auto" else default_split
    generated = {**origin, "rows": _ranges([r.number for r in rows])}
    if placeholder:
        generated["placeholder_scene"] = True
    return {
        "id": scene_id,
        "version": 1,
        "country": country,
        "topic": topic,
        "split": split,
        "text": text or placeholder_text(country, topic),
        "actions": actions,
        "generated": generated,
    }


def _ranges(numbers: list[int]) -> str:
    """Row numbers as compact ranges: [1, 2, 3, 7] → '1-3, 7'."""
    parts, start, prev = [], None, None
    for n in sorted(numbers):
        if start is None:
            start = prev = n
        elif n == prev + 1:  # type: ignore[operator]
            prev = n
        else:
            parts.append(f"{start}-{prev}" if prev != start else str(start))
            start = prev = n
    if start is not None:
        parts.append(f"{start}-{prev}" if prev != start else str(start))
    return ", ".join(parts)


def _id_for(key: tuple[str, str, str], rows: list[Row], taken: set[str]) -> str:
    """The dataset's scene id (as a slug, when it names one and it is free), else the cell's next free id."""
    import re

    country, topic, _ = key
    given = rows[0].scene_key
    if given:
        slug = re.sub(r"[^a-z0-9_\-]+", "-", given.lower()).strip("-_")[:60]
        candidate = f"{country}-{slug}" if not slug.startswith(f"{country}-") else slug
        if slug and candidate not in taken:
            return candidate
    return scene_ids(country, topic, taken)[0]


# ---------------------------------------------------------------- entry point


def import_dataset(cfg: DictConfig, overrides: list[str], index: SpecIndex) -> dict[str, Any]:
    """Run ``vat import``: read, map, write one YAML per scene under ``importer.out``; return the report."""
    started = time.perf_counter()
    section = importer_conf(cfg, overrides)
    check_out_dir(Path(str(section.out)), cfg.spec_dir, "importer.out")
    if section.scene_split not in ("auto", "train", "test"):
        raise VatError(f"importer.scene_split={section.scene_split!r}; use auto, train or test", 2)
    names = Names.build(
        index.value_system,
        {
            "country": dict(section.country_names),
            "topic": {**topic_aliases(), **dict(section.topic_names)},  # the user's names win
            "value": dict(section.value_names),
        },
    )
    polarities = polarity_map(dict(section.polarity_labels))
    raw_rows, available, origin_name = load_rows(section)
    cols = column_map(dict(section.columns), available)
    bad = Unmapped()
    rows = [
        r for n, raw in enumerate(raw_rows, start=1) if (r := map_row(n, raw, cols, names, polarities, bad))
    ]
    if section.strict_names and bad.names:
        raise VatError(f"nothing written: {unmapped_names_message(bad.names)}", 1)
    origin = {
        "by": "vat import",
        "source": origin_name,
        "mapping": {f: (c.column + "".join(f".{k}" for k in c.keys)) for f, c in cols.items()},
        "date": date.today().isoformat(),
    }
    written, placeholders, reviews = _write_scenes(rows, section, index, origin, bad)
    elapsed = time.perf_counter() - started
    return {
        "source": origin_name,
        "rows": len(raw_rows),
        "rows_mapped": len(rows),
        "rows_unmapped": len(raw_rows) - len(rows),
        "scenes_written": len(written),
        "actions_written": sum(len(s.actions) for s, _ in written.values()),
        "placeholder_scenes": placeholders,
        "unmapped": bad.report(),
        "unmapped_names": {k: dict(c.most_common()) for k, c in sorted(bad.names.items())},
        "unmapped_names_hint": unmapped_names_message(bad.names) if bad.names else "",
        "cells_parsed": dict(bad.cells.most_common()),
        "incomplete_scenes": sorted(
            sid for sid, notes in reviews.items() if any("incomplete" in x for x in notes)
        ),
        "scenes_to_review": {sid: notes for sid, notes in reviews.items() if notes},
        "out": str(Path(str(section.out))),
        "files": sorted(str(p) for _, p in written.values()),
        "elapsed_s": round(elapsed, 3),
        "rows_per_s": round(len(raw_rows) / elapsed, 1) if elapsed > 0 else None,
        "peak_rss_mb": peak_rss_mb(),
    }


def _write_scenes(
    rows: list[Row], section: DictConfig, index: SpecIndex, origin: dict[str, Any], bad: Unmapped
) -> tuple[dict[str, tuple[Any, Path]], list[str], dict[str, list[str]]]:
    """Write one file per scene; return the written scenes, the placeholder ids and review notes by id."""
    out = Path(str(section.out))
    taken = set(index.scenes)
    written: dict[str, tuple[Any, Path]] = {}
    placeholders = []
    for key, group in group_scenes(rows).items():
        sid = _id_for(key, group, taken)
        taken.add(sid)
        doc = build_doc(sid, key, group, str(section.scene_split), origin, bad)
        path = scene_path(out, sid, key[0])
        try:
            scene = write_scene(doc, path, _header(origin["source"], doc))
        except ValueError as exc:
            bad.add(f"scene rejected: {str(exc)[:160]}", f"rows {doc['generated']['rows']}")
            continue
        written[sid] = (scene, path)
        if doc["generated"].get("placeholder_scene"):
            placeholders.append(sid)
    reviews = review_problems(written, index) if written else {}
    for sid in placeholders:
        reviews[sid].insert(0, "text: placeholder scene (the dataset has none); write the scene before use")
    return written, placeholders, reviews


def unmapped_names_message(names: dict[str, Counter[str]]) -> str:
    """One sentence listing every country/topic name that did not map, with its rows, and the fix."""
    parts = []
    for kind, counts in sorted(names.items()):
        listed = ", ".join(f"{n!r} ({c} rows)" for n, c in counts.most_common())
        ids = ", ".join(COUNTRIES if kind == "country" else TOPICS)
        parts.append(f"{len(counts)} {kind} name(s) did not map: {listed} (ids: {ids})")
    return (
        "; ".join(parts) + '; map them in the mapping file (e.g. `topic_names: {"Leisure": leisure_sports}`, '
        "`country_names: {...}`) or with importer.topic_names.<name>=<id> on the command line"
    )


def peak_rss_mb() -> float | None:
    """Peak resident memory of the process so far, in MiB (None where the OS has no ``resource`` module)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _header(source: str, doc: dict[str, Any]) -> str:
    lines = [f"Imported by `vat import` from {source} (rows {doc['generated']['rows']}); review before use."]
    if doc["generated"].get("placeholder_scene"):
        lines.append("PLACEHOLDER SCENE: the dataset has no scene text; write a real scene here before use.")
    lines.append(
        f"To adopt it, move the file to spec/scenarios/{doc['country']}/ and run `vat validate --update-lock`."
    )
    return "\n".join(lines)
