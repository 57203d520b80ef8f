"""`vat import`: external datasets (CSV, JSON lines, Parquet) → validated scene YAML, with a report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.specs import SPEC, checked_scene, json_verb, shipped_index

from runner.dataset.draft import Names, draft_near_duplicates, read_scenes, review_problems

ROOT = Path(__file__).resolve().parents[2]


def _next_free(country: str, topic: str) -> int:
    """The suffix an import gives a new scene of a cell: the first ``<topic>-<n>`` not in spec/ (n ≥ 2)."""
    n = 2
    while (SPEC / "scenarios" / country / f"{topic}-{n}.yaml").exists():
        n += 1
    return n


PK_N, DE_N = _next_free("pk", "family_gender"), _next_free("de", "environment")
EG_N, US_N = _next_free("eg", "health"), _next_free("us", "leisure_sports")


_index = shipped_index  # the shipped spec, loaded once (read-only)


SCENE_IN = (
    "Your cousin in Lahore is getting married in December, and the family group chat is deciding how many "
    "functions to hold. Your father wants the full mehndi, baraat and walima, your cousin wants one small "
    "nikah at the mosque, and the hall needs a deposit by Friday."
)
SCENE_DE = (
    "Your housing cooperative in Leipzig votes next week on whether to replace the courtyard parking with "
    "raised beds and a bicycle shed. Older members rely on their cars, the young families want the garden, "
    "and the board asks you to draft the proposal."
)


def _rows() -> list[dict[str, Any]]:
    """Rows in a foreign shape: names instead of ids, a JSON-encoded meta column, positive/negative labels."""

    def row(country, topic, scene, value, micro, label, action, ref="s1"):
        return {
            "Country": country,
            "Topic": topic,
            "Scenario": scene,
            "meta": json.dumps({"value": value, "micro": micro, "ref": ref}),
            "label": label,
            "Action": action,
        }

    return [
        row(
            "Pakistan",
            "Family and gender roles",
            SCENE_IN,
            "Tradition",
            "Respect for tradition",
            "positive",
            "I ask my father to keep all three functions the way our grandparents held them.",
        ),
        row(
            "pakistan",
            "family_gender",
            SCENE_IN,
            "tradition",
            "respect_for_tradition",
            "negative",
            "I suggest we drop the mehndi this year and keep only the nikah.",
        ),
        row(
            "PK",
            "Family and gender roles",
            SCENE_IN,
            "Power",
            "Social power",
            "POSITIVE",
            "I make sure the final guest list has to go through me.",
        ),
        row(
            "Pakistan",
            "Family and gender roles",
            SCENE_IN,
            "Power",
            "Social-Power",
            "negative",
            "I let my cousin decide the guest list without my input.",
        ),
        row(
            "Pakistan",
            "Family and gender roles",
            SCENE_IN,
            "Benevolence",
            "Kindness",
            "positive",
            "I offer to pay the hall deposit myself so nobody has to rush.",
        ),
        row(
            "Pakistan",
            "Family and gender roles",
            SCENE_IN,
            "Benevolence",
            "Helpful",
            "negative",
            "I tell them I am too busy to help with any of the arrangements.",
        ),
        row(
            "Pakistan",
            "Family and gender roles",
            SCENE_IN,
            "Benevolence",
            "Helpful",
            "negative",
            "I tell them I am too busy to help with any of the arrangements.",
        ),  # a duplicate row
        row(
            "Germany",
            "Environment",
            SCENE_DE,
            "Universalism",
            "Unity with nature",
            "positive",
            "I draft the proposal around native plants and a hedge for the birds.",
            ref="s2",
        ),
        row(
            "Germany",
            "Environment",
            SCENE_DE,
            "Security",
            "Dragons",
            "negative",
            "I propose keeping the parking so older members can still reach the door.",
            ref="s2",
        ),
        row(
            "Germany",
            "Environment",
            SCENE_DE,
            "Wanderlust",
            None,
            "positive",
            "I suggest a wildflower meadow nobody in the cooperative has tried.",
            ref="s2",
        ),
        row(
            "Germany",
            "Environment",
            SCENE_DE,
            "Security",
            "Clean",
            "maybe",
            "I ask for lighting in the courtyard before anything else.",
            ref="s2",
        ),
        row(
            "Mars",
            "Environment",
            SCENE_DE,
            "Security",
            "Clean",
            "positive",
            "I ask for lighting in the courtyard before anything else.",
            ref="s2",
        ),
        row(
            "Germany",
            "Environment",
            SCENE_DE,
            "Security",
            "Clean",
            "positive",
            "Lighting should come first.",
            ref="s2",
        ),
        row(
            "Germany",
            "Environment",
            SCENE_DE,
            "Power",
            "Helpful",
            "positive",
            "I insist the board lets me chair every garden meeting.",
            ref="s2",
        ),
    ]


COLUMNS = [
    "columns.country=Country",
    "columns.topic=Topic",
    "columns.scene=Scenario",
    "columns.value=meta.value",
    "columns.micro_value=meta.micro",
    "columns.polarity=label",
    "columns.action=Action",
    "polarity_labels.positive=express",
    "polarity_labels.negative=suppress",
]


def _import(vat, *args: str) -> tuple[Any, dict[str, Any]]:
    return json_verb(vat, "import", *args)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    import csv

    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_csv_with_json_column_and_labels(vat, tmp_path):
    src = _write_csv(tmp_path / "data.csv", _rows())
    out = tmp_path / "out"
    result, rep = _import(vat, f"source={src}", *COLUMNS, f"out={out}")
    assert result.code == 0, result.err
    assert rep["rows"] == 14 and rep["scenes_written"] == 2
    pk = checked_scene(
        out / "pk" / f"family_gender-{PK_N}.yaml"
    )  # pk-family_gender is shipped: the next free id
    assert pk.text == SCENE_IN and pk.generated["by"] == "vat import" and pk.generated["source"] == str(src)
    acts = {a.id: a for a in pk.actions}
    assert set(acts) == {
        "respect_for_tradition-express",
        "respect_for_tradition-suppress",
        "social_power-express",
        "social_power-suppress",
        "benevolence-express",  # "Kindness" is no micro-value: kept with its value only
        "helpful-suppress",
    }
    assert acts["social_power-express"].polarity.value == "express"  # "POSITIVE": labels are case-insensitive
    assert acts["social_power-suppress"].value == "power" and acts["benevolence-express"].micro_value is None
    de = checked_scene(out / "de" / f"environment-{DE_N}.yaml")
    assert {a.id for a in de.actions} == {"unity_with_nature-express", "security-suppress"}
    reasons = {u["reason"]: u for u in rep["unmapped"]}
    assert reasons["unknown micro-value (imported with its value only)"]["rows"] == 2
    assert any(
        "'Kindness'" in e for e in reasons["unknown micro-value (imported with its value only)"]["examples"]
    )
    assert reasons["unknown value"]["examples"] == ["'Wanderlust' (row 10)"]
    assert reasons["unknown polarity label (map it in importer.polarity_labels)"]["examples"] == [
        "'maybe' (row 11)"
    ]
    assert reasons["unknown country"]["examples"] == ["'Mars' (row 12)"]
    assert reasons['action text rejected: action text must be first person ("I ...")']["rows"] == 1
    assert reasons["micro-value belongs to another value"]["rows"] == 1
    assert reasons["duplicate action in its scene"]["rows"] == 1
    assert rep["rows_unmapped"] == 5 and rep["actions_written"] == 8
    assert sorted(rep["incomplete_scenes"]) == [f"de-environment-{DE_N}", f"pk-family_gender-{PK_N}"]
    assert rep["placeholder_scenes"] == []


def test_jsonl_without_scene_text_gets_flagged_placeholders(vat, tmp_path):
    src = tmp_path / "actions.jsonl"
    rows = [
        {
            "country": "United States",
            "topic": "Leisure & Sports",
            "value": "Hedonism",
            "pol": 1,
            "text": "I take the afternoon off to watch the county fair parade.",
        },
        {
            "country": "USA",
            "topic": "leisure and sports",
            "value": "Hedonism",
            "pol": 0,
            "text": "I skip the county fair to finish my overtime shift.",
        },
        {
            "country": "Egypt",
            "topic": "Health",
            "value": "Self direction",
            "pol": 1,
            "text": "I look up the clinic's reviews myself before booking.",
        },
    ]
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out"
    result, rep = _import(
        vat,
        f"source={src}",
        "columns.country=country",
        "columns.topic=topic",
        "columns.value=value",
        "columns.polarity=pol",
        "columns.action=text",
        "polarity_labels.1=express",
        "polarity_labels.0=suppress",
        f"out={out}",
    )
    assert result.code == 0, result.err
    assert sorted(rep["placeholder_scenes"]) == [f"eg-health-{EG_N}", f"us-leisure_sports-{US_N}"]
    us = checked_scene(out / "us" / f"leisure_sports-{US_N}.yaml")
    assert us.generated["placeholder_scene"] is True and "Placeholder scene" in us.text
    assert [(a.value, a.polarity.value) for a in us.actions] == [
        ("hedonism", "express"),
        ("hedonism", "suppress"),
    ]
    assert rep["scenes_to_review"][f"us-leisure_sports-{US_N}"][0].startswith("text: placeholder scene")
    assert (
        (out / "us" / f"leisure_sports-{US_N}.yaml")
        .read_text()
        .splitlines()[1]
        .startswith("# PLACEHOLDER SCENE")
    )


def test_parquet_with_micro_values_only_and_dataset_scene_ids(vat, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "d.parquet"
    table = pa.table(
        {
            "sid": ["Pk Wedding 01", "Pk Wedding 01", "de_garden"],
            "c": ["pk", "pk", "de"],
            "t": ["family_gender", "family_gender", "environment"],
            "s": [SCENE_IN, SCENE_IN, SCENE_DE],
            "info": [
                {"sv": "Social recognition"},
                {"sv": "A varied life"},
                {"sv": "Protecting the environment"},
            ],
            "y": ["express", "suppress", "express"],
            "a": [
                "I make sure the wedding photos go up on the family page first.",
                "I keep the wedding exactly as last year's, with the same caterer and hall.",
                "I propose rainwater barrels for the new raised beds.",
            ],
        }
    )
    pq.write_table(table, src)
    out = tmp_path / "out"
    result, rep = _import(
        vat,
        f"source={src}",
        "columns.scene_id=sid",
        "columns.country=c",
        "columns.topic=t",
        "columns.scene=s",
        "columns.micro_value=info.sv",
        "columns.polarity=y",
        "columns.action=a",
        f"out={out}",
    )
    assert result.code == 0, result.err
    pk = checked_scene(out / "pk" / "wedding-01.yaml")  # the dataset's id, as a slug under its country
    assert pk.id == "pk-wedding-01"
    assert [(a.value, a.micro_value) for a in pk.actions] == [
        ("power", "social_recognition"),
        ("stimulation", "varied_life"),
    ]
    de = checked_scene(out / "de" / "de_garden.yaml")
    assert de.actions[0].micro_value == "protecting_environment" and de.actions[0].value == "universalism"
    assert rep["unmapped"] == []


def test_mapping_file_with_relative_source_and_command_line_override(vat, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _write_csv(data / "rows.csv", _rows())
    mapping = data / "mapping.yaml"
    lines = (
        ["source: rows.csv", "columns:"]
        + [
            f"  {c.split('=')[0].removeprefix('columns.')}: {c.split('=')[1]}"
            for c in COLUMNS
            if c.startswith("columns.")
        ]
        + ["polarity_labels: {positive: express, negative: suppress}", f"out: {tmp_path / 'ignored'}"]
    )
    mapping.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    result, rep = _import(vat, f"mapping={mapping}", f"out={out}", "max_rows=4")
    assert result.code == 0, result.err
    assert rep["rows"] == 4 and rep["out"] == str(out) and not (tmp_path / "ignored").exists()
    assert rep["source"] == str(data / "rows.csv")


def test_the_shipped_example_imports(vat, tmp_path):
    result, rep = _import(vat, "mapping=docs/examples/import/mapping.yaml", f"out={tmp_path}")
    assert result.code == 0, result.err
    assert rep["scenes_written"] == 3 and rep["placeholder_scenes"] == [f"us-leisure_sports-{US_N}"]
    for _, path in [(s, p) for s, p in read_scenes(tmp_path)]:
        checked_scene(path)
    assert {u["reason"] for u in rep["unmapped"]} == {
        "unknown micro-value (imported with its value only)",
        "unknown polarity label (map it in importer.polarity_labels)",
        "unknown country",
    }


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["columns.country=Contry"], 2, "did you mean 'Country'"),
        (["columns.colour=Country"], 2, "not a field"),
        (["columns.action="], 2, "importer.columns has no action"),
        (["polarity_labels.positive=up"], 2, "express or suppress"),
        (["value_names.Kindness=niceness"], 2, "neither a value nor a micro-value"),
    ],
)
def test_mapping_mistakes_are_usage_errors(vat, tmp_path, args, code, message):
    src = _write_csv(tmp_path / "data.csv", _rows())
    result, _ = _import(vat, f"source={src}", *COLUMNS, *args, f"out={tmp_path / 'out'}")
    assert result.code == code, result.err
    assert message in result.err and "Traceback" not in result.err


def test_value_name_aliases_from_the_config(vat, tmp_path):
    src = _write_csv(tmp_path / "data.csv", _rows())
    result, rep = _import(
        vat, f"source={src}", *COLUMNS, "value_names.Kindness=helpful", f"out={tmp_path / 'o'}"
    )
    assert result.code == 0, result.err
    pk = checked_scene(tmp_path / "o" / "pk" / f"family_gender-{PK_N}.yaml")
    assert "helpful-express" in {a.id for a in pk.actions}


def test_source_errors(vat, tmp_path):
    result, _ = _import(vat, "source=someone/some-dataset", *COLUMNS, f"out={tmp_path}")
    assert result.code == 2 and "HF_HUB_OFFLINE=0" in result.err
    (tmp_path / "x.xlsx").write_text("nope")
    result, _ = _import(vat, f"source={tmp_path / 'x.xlsx'}", *COLUMNS, f"out={tmp_path}")
    assert result.code == 2 and ".parquet" in result.err
    result, _ = _import(vat, *COLUMNS, f"out={tmp_path}")
    assert result.code == 2 and "source=" in result.err
    (tmp_path / "bad.json").write_text("{not json")
    result, _ = _import(vat, f"source={tmp_path / 'bad.json'}", *COLUMNS, f"out={tmp_path}")
    assert result.code == 1 and "bad.json" in result.err
    result, _ = _import(vat, f"mapping={tmp_path / 'missing.yaml'}")
    assert result.code == 2 and "missing.yaml" in result.err


def test_every_dropped_row_is_accounted_for(vat, tmp_path):
    rows = _rows()
    rows[0] = rows[0] | {"meta": ""}  # an empty JSON cell: no value, no micro-value
    rows[1] = rows[1] | {"meta": "{broken"}
    rows[2] = rows[2] | {"Action": ""}
    rows[3] = rows[3] | {"meta": "{'value': Tradition}"}  # a Python dict with an unquoted name
    rows[4] = rows[4] | {"meta": "[1, 2]"}
    rows[5] = rows[5] | {"meta": "Benevolence"}
    src = _write_csv(tmp_path / "data.csv", rows)
    result, rep = _import(vat, f"source={src}", *COLUMNS, f"out={tmp_path / 'out'}")
    assert result.code == 0, result.err
    reasons = {u["reason"]: u["examples"] for u in rep["unmapped"]}
    assert reasons["empty value and micro_value"] == ["row 1"]
    assert reasons["column 'meta' holds a truncated object (no closing '}')"] == ["row 2"]
    assert reasons["empty action"] == ["row 3"]
    assert reasons["column 'meta' is neither JSON nor a Python dict"] == ["row 4"]
    assert reasons["column 'meta' holds a list, not an object"] == ["row 5"]
    assert reasons["column 'meta' holds no object (no '{')"] == ["row 6"]
    # Rows dropped while mapping are exactly those counted under a reason that drops them.
    kept = "unknown micro-value (imported with its value only)"
    assert rep["rows_unmapped"] == sum(
        u["rows"] for u in rep["unmapped"] if u["reason"] not in (kept, "duplicate action in its scene")
    )


def test_nothing_importable_exits_1(vat, tmp_path):
    src = _write_csv(tmp_path / "data.csv", [r | {"Country": "Mars"} for r in _rows()])
    result, rep = _import(vat, f"source={src}", *COLUMNS, f"out={tmp_path / 'out'}")
    assert result.code == 1 and rep["scenes_written"] == 0 and rep["unmapped"][0]["rows"] == 14


# ---------------------------------------------------------------- names and review helpers


def test_names_resolve_case_insensitively():
    index = _index()
    names = Names.build(index.value_system)
    assert names.country("United States") == names.country("usa") == names.country("US") == "us"
    assert names.country("United Kingdom") == names.country("Great Britain") == "gb"
    assert names.topic("Leisure & Sports") == names.topic("LEISURE_SPORTS") == "leisure_sports"
    assert names.topic("Family and gender roles") == "family_gender"
    assert names.value("Self-direction") == names.value("self direction") == "self_direction"
    for text in ("Social power", "social_power", "SOCIAL-POWER"):
        assert names.micro_value(text) == "social_power"
    assert names.micro_value("A varied life") == names.micro_value("varied life") == "varied_life"
    assert names.micro_value("Honoring of parents and elders") == "honoring_parents_elders"
    assert names.micro_value("Preserving my public image") == "preserving_public_image"
    assert names.micro_value("Dragons") is None and names.country("Atlantis") is None


def test_near_duplicates_of_drafts_match_the_quality_check(tmp_path):
    from runner.spec.quality import near_duplicates

    index = _index()
    shipped = index.scenes["us-health"]
    copy = shipped.model_copy(update={"id": "us-health-9"})
    found = draft_near_duplicates([copy], [s for s in index.scenes.values()])
    # Every action of the copy duplicates its original (similarity 1.0).
    assert {(a, o, oa) for _, a, o, oa, _ in found if o == "us-health"} == {
        (a.id, "us-health", a.id) for a in shipped.actions
    }
    # Same pairs as the whole-set check of runner.spec.quality, restricted to the draft.
    from runner.spec.load import SpecIndex

    whole = SpecIndex(index.root, index.value_system, {**index.scenes, copy.id: copy}, {}, {}, {})
    expected = {
        (a2, s1, a1) if s2 == copy.id else (a1, s2, a2)
        for s1, a1, s2, a2, _ in near_duplicates(whole)
        if copy.id in (s1, s2)
    }
    assert {(a, o, oa) for _, a, o, oa, _ in found} == expected
    notes = review_problems({copy.id: (copy, tmp_path / "x.yaml")}, index)[copy.id]
    assert sum("near-duplicate of us-health/" in n for n in notes) == len(shipped.actions)


def test_a_misspelled_key_in_a_mapping_file_names_the_file(vat, tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text("source: x.csv\ncolums:\n  country: c\n")
    result, _ = _import(vat, f"mapping={mapping}")
    assert result.code == 2 and "m.yaml" in result.err and "colums" in result.err


# ---------------------------------------------------------------- real files (issue 18.5, 18.6)


def _generation_rows() -> list[dict[str, Any]]:
    """Rows as a generation file holds them: model answers in code fences or as Python dicts, ISSP titles."""
    answers = [
        '```json\n{"value": "Tradition", "micro": "Respect for tradition"}\n```',  # fenced JSON
        "{'value': 'Tradition', 'micro': 'Respect for tradition'}",  # a Python dict
        'Here is the label: {"value": "Power", "micro": "Social power"} as asked.',  # JSON among prose
        "```python\n{'value': 'Power', 'micro': 'Social power', 'sure': True}\n```",  # fenced Python dict
        '{"value": "Benevolence", "micro": "Helpful"',  # cut off by the token limit
    ]
    actions = [
        ("positive", "I ask my father to keep all three functions the way our grandparents held them."),
        ("negative", "I suggest we drop the mehndi this year and keep only the nikah."),
        ("positive", "I make sure the final guest list has to go through me."),
        ("negative", "I let my aunts decide the guest list without my input."),
        ("positive", "I offer to drive the elderly guests between the venues."),
    ]
    return [
        {
            "Country": "Pakistan",
            "Topic": "ISSP 2012 - Family & Changing Gender Roles IV",
            "Scenario": SCENE_IN,
            "meta": answer,
            "label": label,
            "Action": text,
        }
        for answer, (label, text) in zip(answers, actions, strict=True)
    ]


def test_fenced_json_and_python_dict_cells_are_read(vat, tmp_path):
    src = _write_csv(tmp_path / "gen.csv", _generation_rows())
    result, rep = _import(vat, f"source={src}", *COLUMNS, f"out={tmp_path / 'out'}")
    assert result.code == 0, result.err
    assert rep["rows_mapped"] == 4 and rep["rows_unmapped"] == 1
    assert rep["cells_parsed"] == {  # how each readable cell was written (the cut-off one is not)
        "meta: fenced json": 1,
        "meta: python dict": 1,
        "meta: json among text": 1,
        "meta: fenced python dict": 1,
    }
    pk = checked_scene(tmp_path / "out" / "pk" / f"family_gender-{PK_N}.yaml")
    assert {a.id for a in pk.actions} == {
        "respect_for_tradition-express",
        "respect_for_tradition-suppress",
        "social_power-express",
        "social_power-suppress",
    }
    assert [(u["reason"], u["rows"]) for u in rep["unmapped"]] == [
        ("column 'meta' holds a truncated object (no closing '}')", 1)
    ]


def test_parse_cell_says_how_each_cell_was_written():
    from runner.dataset.importer import CellError, parse_cell

    assert parse_cell('{"a": 1}', "m") == ({"a": 1}, "json")
    assert parse_cell('```json\n{"a": 1}\n```', "m") == ({"a": 1}, "fenced json")
    assert parse_cell("```\n{'a': None, 'b': [1, 'x']}\n```", "m") == (
        {"a": None, "b": [1, "x"]},
        "fenced python dict",
    )
    assert parse_cell("{'a': 'it\\'s'}", "m") == ({"a": "it's"}, "python dict")
    for cell, reason in [
        ("{'a': __import__('os').system('true')}", "neither JSON nor a Python dict"),  # literals only
        ("{'a': 1", "truncated"),
        ('["a"]', "holds a list"),
        ("plain words", "no object"),
    ]:
        with pytest.raises(CellError, match=reason):
            parse_cell(cell, "m")


@pytest.mark.parametrize(
    ("given", "topic"),
    [
        ("Family & Changing Gender Roles", "family_gender"),
        ("Work Orientations", "work"),
        ("ISSP 2016 – Role of Government V", "politics"),
        ("Social Networks and Social Resources", "social_networks"),
        ("Social Inequality IV", "social_inequality"),
        ("Environment", "environment"),
        ("National Identity III", "national_identity"),
        ("Citizenship II", "citizenship"),
        ("Leisure Time and Sports", "leisure_sports"),
        ("Health and Health Care", "health"),
        ("Religion 2018", "religion"),
    ],
)
def test_issp_module_titles_map_to_topics(given, topic):
    from runner.dataset.importer import bare_module_name, topic_aliases

    names = Names.build(_index().value_system, {"topic": topic_aliases()})
    assert (names.topic(given) or names.topic(bare_module_name(given))) == topic


def _jsonl_with_topics(path: Path, topics: list[str]) -> Path:
    rows = [
        {
            "country": "Egypt",
            "topic": t,
            "value": "Hedonism",
            "pol": "express",
            "text": f"I take the afternoon off to watch the match number {k} with friends.",
        }
        for k, t in enumerate(topics)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


JSONL_COLUMNS = [
    "columns.country=country",
    "columns.topic=topic",
    "columns.value=value",
    "columns.polarity=pol",
    "columns.action=text",
]


def test_unmapped_topic_names_are_listed_with_the_fix(vat, tmp_path):
    src = _jsonl_with_topics(tmp_path / "a.jsonl", ["Leisure Time and Sports", "Pastimes & Hobbies"] * 2)
    result, rep = _import(vat, f"source={src}", *JSONL_COLUMNS, f"out={tmp_path / 'o1'}")
    assert result.code == 0 and rep["rows_mapped"] == 2
    assert rep["unmapped_names"] == {"topic": {"Pastimes & Hobbies": 2}}
    assert (
        "'Pastimes & Hobbies' (2 rows)" in rep["unmapped_names_hint"]
        and "topic_names" in rep["unmapped_names_hint"]
    )
    result = vat("import", f"source={src}", *JSONL_COLUMNS, f"out={tmp_path / 'o2'}")
    assert "'Pastimes & Hobbies' (2 rows)" in result.err  # the table summary says it too
    # strict_names: nothing is written, and the message lists the names.
    result, _ = _import(vat, f"source={src}", *JSONL_COLUMNS, "strict_names=true", f"out={tmp_path / 'o3'}")
    assert result.code == 1 and "Pastimes & Hobbies" in result.err and not (tmp_path / "o3").exists()
    # A user mapping (in a mapping file: the name has spaces and '&') maps the rest.
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        f"source: {src}\ncolumns: {{country: country, topic: topic, value: value, polarity: pol, action: text}}\n"
        'topic_names: {"Pastimes & Hobbies": leisure_sports}\n'
    )
    result, rep = _import(vat, f"mapping={mapping}", "strict_names=true", f"out={tmp_path / 'o4'}")
    assert result.code == 0, result.err
    assert rep["rows_mapped"] == 4 and rep["unmapped_names"] == {}


def test_summary_reports_speed_memory_and_reasons(vat, tmp_path):
    src = _write_csv(tmp_path / "data.csv", _rows())
    result, rep = _import(vat, f"source={src}", *COLUMNS, f"out={tmp_path / 'out'}")
    assert result.code == 0, result.err
    assert rep["elapsed_s"] > 0 and rep["rows_per_s"] == pytest.approx(
        rep["rows"] / rep["elapsed_s"], rel=0.01
    )
    assert rep["peak_rss_mb"] > 10  # a Python process with datasets loaded
    assert rep["rows_mapped"] + rep["rows_unmapped"] == rep["rows"] and rep["unmapped"]
    table = vat("import", f"source={src}", *COLUMNS, f"out={tmp_path / 'out2'}")
    assert "rows/s" in table.err + table.out and "peak memory" in table.err + table.out


def test_placeholder_scenes_fail_validate_until_replaced(vat, tmp_path):
    import shutil

    src = _jsonl_with_topics(tmp_path / "a.jsonl", ["Health"])
    result, rep = _import(vat, f"source={src}", *JSONL_COLUMNS, f"out={tmp_path / 'out'}")
    assert result.code == 0 and rep["placeholder_scenes"] == [f"eg-health-{EG_N}"]
    spec = tmp_path / "spec"
    shutil.copytree(SPEC, spec)
    shutil.copy(
        tmp_path / "out" / "eg" / f"health-{EG_N}.yaml", spec / "scenarios" / "eg" / f"health-{EG_N}.yaml"
    )
    result = vat("validate", f"spec_dir={spec}", "format=json")
    problems = json.loads(result.out)["problems"]
    assert result.code == 1
    assert any(f"health-{EG_N}.yaml" in p and "placeholder scene from `vat import`" in p for p in problems), (
        problems
    )


def _hub_folder(root: Path) -> Path:
    """A folder laid out like a Hub dataset repository: a README with configs, Parquet files per split."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "data").mkdir(parents=True)
    rows = _rows()
    for split, part in (("train", rows[:8]), ("test", rows[8:])):
        pq.write_table(pa.Table.from_pylist(part), root / "data" / f"{split}-00000-of-00001.parquet")
    (root / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n"
        "  - split: train\n    path: data/train-*\n  - split: test\n    path: data/test-*\n---\n# A dataset\n"
    )
    return root


def test_a_hub_layout_folder_imports_offline(vat, tmp_path):
    folder = _hub_folder(tmp_path / "someone__dataset")
    result, rep = _import(vat, f"source={folder}", *COLUMNS, f"out={tmp_path / 'o1'}")
    assert result.code == 0, result.err
    assert rep["rows"] == 8 and rep["source"] == str(folder)
    result, rep = _import(vat, f"source={folder}", "split=test", *COLUMNS, f"out={tmp_path / 'o2'}")
    assert result.code == 0 and rep["rows"] == len(_rows()) - 8
    result, _ = _import(vat, f"source={folder}", "split=nope", *COLUMNS, f"out={tmp_path / 'o3'}")
    assert result.code == 1 and "split" in result.err and "Traceback" not in result.err
    result, _ = _import(vat, f"source={folder}", "revision=abc123", *COLUMNS, f"out={tmp_path / 'o4'}")
    assert result.code == 2 and "Hub ids only" in result.err


def test_a_hub_id_is_read_at_the_pinned_revision(vat, tmp_path, monkeypatch):
    import datasets

    calls = []

    def fake_load(path, name=None, **kwargs):  # the network is not there: record what would be asked
        calls.append((path, name, kwargs))
        return datasets.Dataset.from_list(_rows())

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    result, rep = _import(
        vat, "source=someone/vat-actions", "revision=0123abcd", *COLUMNS, f"out={tmp_path / 'o'}"
    )
    assert result.code == 0, result.err
    assert calls == [("someone/vat-actions", None, {"split": "train", "revision": "0123abcd"})]
    assert rep["source"] == "someone/vat-actions@0123abcd"
    pk = checked_scene(tmp_path / "o" / "pk" / f"family_gender-{PK_N}.yaml")
    assert pk.generated["source"] == "someone/vat-actions@0123abcd"


def test_the_shipped_generation_file_example_imports(vat, tmp_path):
    result, rep = _import(vat, "mapping=docs/examples/import/generation-mapping.yaml", f"out={tmp_path}")
    assert result.code == 0, result.err
    assert rep["rows"] == 7 and rep["rows_mapped"] == 6 and rep["unmapped_names"] == {}
    assert [(u["reason"], u["rows"]) for u in rep["unmapped"]] == [
        ("column 'response' holds a truncated object (no closing '}')", 1)
    ]
    assert sum(rep["cells_parsed"].values()) == 6
    pk = checked_scene(tmp_path / "pk" / f"family_gender-{PK_N}.yaml")
    assert [a.id for a in pk.actions] == [
        "respect_for_tradition-express",
        "respect_for_tradition-suppress",
        "helpful-express",
    ]
    assert {p.parent.name for p in tmp_path.rglob("*.yaml")} == {"pk", "ca"}
