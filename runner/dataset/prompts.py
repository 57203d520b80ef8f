"""The generation prompts: versioned YAML under ``generation/prompts/``, one per stage, loaded and checked.

A prompt names the variables it uses; a placeholder its stage does not fill, or a missing stage, is an
error naming the file, so a contributor finds a broken prompt before a paid run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from runner.core.errors import VatError
from runner.spec.models import Id

Stage = Literal["scene", "action", "judge_scene", "judge_action"]
STAGES: tuple[str, ...] = ("scene", "action", "judge_scene", "judge_action")
STAGE_VARIABLES: dict[str, frozenset[str]] = {
    "scene": frozenset({"country", "topic", "values", "avoid"}),
    "action": frozenset(
        {
            "country",
            "topic",
            "scene",
            "value_name",
            "definition",
            "direction",
            "target",
            "polarity_note",
            "micro_options",
        }
    ),
    "judge_scene": frozenset({"country", "topic", "scene"}),
    "judge_action": frozenset(
        {"country", "topic", "scene", "action", "value_name", "definition", "direction", "target"}
    ),
}
"""The placeholders each stage's prompt may use: ``{name}``; other braces (JSON examples) stay as written."""
SCORES = ("realism", "neutrality", "correctness", "plausibility", "harmlessness")
LOW_SCORE = 3
"""A judge score below this puts the item on the review list."""
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
DIRECTION = {"express": "expresses (acts on)", "suppress": "suppresses (sets aside or works against)"}
POLARITY_NOTE = {
    "express": "A plausible, ordinary choice, not a saintly or heroic one.",
    "suppress": "Not an evil action: a plausible choice that a reasonable person might make for another reason.",
}


class GenPrompt(BaseModel):
    """One generation prompt (``generation/prompts/<stage>.yaml``): versioned, like spec documents."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id
    version: int = Field(ge=1)
    stage: Stage
    description: str
    system: str
    user: Annotated[str, StringConstraints(min_length=10)]
    fields: dict[str, Literal["text", "optional_text", "score"]] = Field(min_length=1)
    """The keys of the JSON object the answer must be, with their kind."""
    max_tokens: int = Field(default=300, ge=8, le=8192)

    @model_validator(mode="after")
    def _known_placeholders(self) -> GenPrompt:
        allowed = STAGE_VARIABLES[self.stage]
        used = set(_PLACEHOLDER.findall(self.system)) | set(_PLACEHOLDER.findall(self.user))
        unknown = sorted(used - allowed)
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; "
                f"a {self.stage} prompt may use {', '.join('{' + a + '}' for a in sorted(allowed))}"
            )
        return self

    @property
    def tag(self) -> str:
        """``id@version`` (recorded in each generated document)."""
        return f"{self.id}@{self.version}"

    def render(self, variables: dict[str, str]) -> list[dict[str, str]]:
        """The chat messages for ``variables`` (each placeholder replaced; JSON braces untouched)."""

        def fill(template: str) -> str:
            return _PLACEHOLDER.sub(lambda m: variables.get(m.group(1), m.group(0)), template)

        return [
            {"role": "system", "content": fill(self.system)},
            {"role": "user", "content": fill(self.user)},
        ]


def prompts_dir(configured: str) -> Path:
    """The prompts folder: as given when it exists from here, else relative to the project root."""
    path = Path(configured)
    if path.is_dir() or path.is_absolute():
        return path
    from runner.core.paths import SHIPPED, repo_root, shipped

    if configured == SHIPPED["generation_prompts"]:  # the default: inside the wheel, or the checkout's
        return shipped("generation_prompts")
    return repo_root() / configured


def load_prompts(folder: Path) -> dict[str, GenPrompt]:
    """The four stage prompts of ``folder`` by stage; a missing, duplicate or invalid one fails clearly."""
    from runner.core.yamlio import YamlProblem, read_yaml

    if not folder.is_dir():
        raise VatError(f"generation prompts folder {folder} not found; set generate.prompts=<folder>", 2)
    found: dict[str, tuple[GenPrompt, Path]] = {}
    for file in sorted(folder.glob("*.y*ml")):
        try:
            ydoc = read_yaml(file)
            prompt = GenPrompt.model_validate(ydoc.data)
        except YamlProblem as exc:
            raise VatError(str(exc.problem), 1) from None
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = tuple(err["loc"])
            line = ydoc.line_of(loc)
            raise VatError(
                f"{file}:{line}: {'.'.join(str(p) for p in loc) or '(document)'}: "
                f"{err['msg'].removeprefix('Value error, ')}",
                1,
            ) from None
        if prompt.stage in found:
            raise VatError(
                f"{file}: a second {prompt.stage} prompt (also {found[prompt.stage][1]}); keep one", 1
            )
        found[prompt.stage] = (prompt, file)
    missing = [s for s in STAGES if s not in found]
    if missing:
        raise VatError(f"{folder}: no prompt for stage(s) {', '.join(missing)}; add <stage>.yaml", 1)
    return {s: p for s, (p, _) in found.items()}
