"""A SIMULATED judge with planted value structure, LiteLLM provider ``sim/``: for validating the metrics.

No judge-grade model runs on this machine, so the metrics are validated another way: a judge whose value
structure is *planted* answers through the ordinary pipeline, and the measured metrics are compared with
what the planted parameters imply (``vat validate-metrics``, ``runner/validation.py``). It is never a
default, and every report labels ``sim/`` models as simulated. This module is the judge and its LiteLLM
registration; the planted model lives in :mod:`~runner.execute.providers.sim_model` and the reading of a
request in :mod:`~runner.execute.providers.sim_read` (the names below are importable from here).

Model strings: ``sim/<profile>`` (a profile is ``conf/sim/<profile>.yaml``), or, as a post model of the
``checkpoint`` strategy, ``sim/<profile>:<target>:<reinforce|suppress>[:<dose>]`` (a "fine-tuned"
simulated checkpoint with the intervention built in).

How a request is answered
-------------------------
The judge reads the request like a person would: the last user message must be a judgment prompt of
the spec index, in one of its wordings (variants), rendered for one (scene, action) — looked up exactly,
or for a prompt that names a value, matched against its template to recover the scene, the action and
the value or micro-value asked about (the index is the one passed to :func:`configure`, else
``$VAT_SPEC_DIR`` or ``spec/``). The wording tells whether the scale is shown reversed; demonstrated
digits are then read as 6 − d. The intervention is read from the prompt:

- few-shot demonstrations (user/assistant pairs before the item): each demonstration is looked up; the
  target t is the value most of them belong to, the direction d = sign(Σ σ_i·(r_i − 3)) over their
  polarities σ_i and demonstrated ratings r_i, and the dose D = k / (k + k_half) for k demonstrations;
- a system message longer than a known judgment prompt: the extra text is matched exactly against every
  ``system_prompt``-kind strategy rendered for every value and direction; D = ``dose.system_prompt``;
- a checkpoint model string (above): D = its dose, else ``dose.checkpoint``;
- the judgment prompt alone (baseline): no intervention. Several interventions add up.

The generative model (every random effect is a standard normal drawn from a hash of the profile seed
and the names it depends on, so answers are deterministic per request)
--------------------------------------------------------------------------------------------------------
Values v on the circle at θ_v = 2π·index/10; scene s; action a with value v(a) and polarity σ_a (±1).

- latent value state before:  λ_pre[s, v] = w[v] + scene_sd·b[s, v]
- intervention (t, d, D):     λ_post[s, v] = λ_pre[s, v] + S_s·k_v, where
      k_t = d·D·g,
      k_u = d·D·g·(a·c(u, t) + h_u) for u ≠ t,   c(u, t) = cos(θ_u − θ_t) for shape ``circle``
      (neighbours of t move with it, opposites against), c = 0 for shape ``none``; h_u is a value's
      extra ``coupling`` (a hub moves by h_u·gain whatever the target);
      S_s = exp(τ·z_s − τ²/2) is the scene's susceptibility (log-normal, mean 1, τ = susceptibility_sd),
      shared by every value of the scene, so off-target shifts co-vary with the on-target shift.
- the judge's mean answer to a prompt: μ = 3 + 2·σ_a·λ[s, v(a)] + action_sd·β[s, a] + noise·ε, where β is
  the wording's fixed agreeableness (the same before and after) and ε is drawn from a hash of the model,
  the item and the condition (:func:`condition_key`: no intervention, or the demonstrations' items and
  ratings, the system_prompt strategy with its target and direction, the checkpoint), so the pre and
  post answers of an item get independent noise, and rewording a prompt does not redraw it.
- a question that names a value u (elicitation=value / micro_value, docs/elicitation.md) asks how far
  the action honours or goes against u, so its answer carries its own sign:
      μ = 3 + 2·(read·ρ(a, u) + lens·(λ[s, u] − w[u])) + action_sd·β[s, a, u] + noise·ε,
  where ρ(a, u) = σ_a for u = v(a) (σ_a·micro_relevance for another micro-value of v(a)) and
  σ_a·relevance·cos(θ_u − θ_v(a)) otherwise: a judge that reads the action says how it bears on u, and
  a change of its valuation of u (scene deviation, intervention) moves every answer about u. So the
  evidence e = φ(r) ≈ read·ρ + λ − w, and the shift of (s, a) for u is S_{s,a}·k_u + noise: every
  scene–action pair carries evidence for every value. S_{s,a} = S_s·exp(τ_p·z_{s,a} − τ_p²/2)
  (τ_p = ``pair_susceptibility_sd``, default 0) lets shifts vary between the actions of a scene.
- bias terms (every question): μ ← 3 + attention·(μ − 3 content) + acquiescence (towards "agree" /
  "honours"); a variant other than base adds wording_sd·ω[variant, s, a, u]; on a reversed scale the
  digit shown is μ ← 6 − μ; digit_bias then moves towards the digit 5 whatever it means. An "always
  agree" judge (conf/sim/acquiescent.yaml) has low attention and high acquiescence.
- answer distribution: p(k) ∝ exp(−(k − μ)² / (2·spread²)), k = 1..5. Logprobs are log p (the top
  ``top_logprobs`` tokens). The text answer is the most likely digit at temperature 0; at temperature
  T > 0 it is a draw from p^(1/T), seeded by the condition key and by how many times this process has
  been asked the same request (so repeated samples of one item differ, and a run's set of answers is reproducible).

What the metrics should be. With the expected rating r̂ = Σ k·p(k) ≈ μ (away from the ends of the scale),
the evidence of an item is e = σ·(r̂ − 3)/2 ≈ λ + σ·(action_sd·β + noise·ε)/2, so the value state is
E[s, v] ≈ λ[s, v] + noise and the shift Δ[s, v] ≈ S_s·k_v + η with Var η = noise²/4 (two items per value
and condition). Hence mean shift m(v) ≈ k_v, directed gain G ≈ D·g, GND(u) ≈ a·c(u, t) + h_u, and the
Pearson coupling ≈ k_u·k_w·V / √((k_u²V + noise²/4)(k_w²V + noise²/4)) with V = exp(τ²) − 1 (Spearman
≈ (6/π)·asin(ρ/2)); a value with k_u = 0 is exactly uncoupled. r̂ flattens near 1 and 5, which shrinks
large shifts a little: ``runner.validation.known_answer`` therefore computes the planted values exactly, by simulating
this same model (:func:`simulate_states`, vectorised) on many scenes.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from runner.core.errors import VatError
from runner.execute.providers.sim_model import (
    ITEMS_PER_VALUE,
    PROVIDER,
    SCALE,
    Profile,
    answer_probs,
    load_profile,
    normal_draw,
    profile_names,
    simulate_pair_states,
    simulate_states,
    susceptibility,
    unit_draw,
)
from runner.execute.providers.sim_read import (
    Intervention,
    Item,
    build_tables,
    content_of,
    pair_susceptibility,
    parse_model,
    read_request,
)

__all__ = [  # the simulated judge's names, wherever they live (sim_model, sim_read)
    "ITEMS_PER_VALUE",
    "PROVIDER",
    "SCALE",
    "Answer",
    "Intervention",
    "Item",
    "Profile",
    "SimJudge",
    "condition_key",
    "configure",
    "judge",
    "load_profile",
    "logprobs_payload",
    "parse_model",
    "profile_names",
    "read_request",
    "register",
    "simulate_pair_states",
    "simulate_states",
    "susceptibility",
]

# ---------------------------------------------------------------------------------------------------
# The judge
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One simulated judgment: the digit, the answer distribution, and what it was computed from."""

    rating: int
    probs: np.ndarray
    mu: float
    item: Item
    interventions: tuple[Intervention, ...]


class SimJudge:
    """Answers requests from the generative model of the module docstring, for one spec index."""

    def __init__(self, index: Any) -> None:
        self.tables = build_tables(index)
        self._profiles: dict[str, Profile] = {}
        self._asked: Counter[str] = Counter()

    def profile(self, name: str) -> Profile:
        """Load (once) the profile ``name``."""
        if name not in self._profiles:
            self._profiles[name] = load_profile(name, self.tables.values, self.tables.circle_index)
        return self._profiles[name]

    def latent(
        self, profile: Profile, item: Item, interventions: Sequence[Intervention], value: str | None = None
    ) -> float:
        """λ[s, v] of the item's scene and value (or ``value``) under the interventions."""
        value = value or item.value
        seed, v = profile.doc.seed, self.tables.values.index(value)
        lam = profile.weights[v] + profile.doc.scenes.value_sd * normal_draw(
            seed, "value", item.scene_id, value
        )
        if interventions:
            s = susceptibility(profile, item.scene_id) * pair_susceptibility(profile, item)
            for iv in interventions:
                lam += s * profile.shift(iv.target, iv.direction, iv.dose)[v]
        return float(lam)

    def relevance(self, profile: Profile, item: Item) -> float:
        """ρ(a, u): how far the item's action honours (+) or goes against (−) the asked value u."""
        jd = profile.doc.judge
        u = item.asked_value
        if u == item.value:
            same_micro = item.asked_micro_value is None or item.asked_micro_value == item.micro_value
            return item.sign * (1.0 if same_micro else jd.micro_relevance)
        index = self.tables.circle_index
        angle = 2.0 * math.pi * (index[str(u)] - index[item.value]) / len(self.tables.values)
        return item.sign * jd.relevance * math.cos(angle)

    def content(self, profile: Profile, item: Item, interventions: Sequence[Intervention]) -> float:
        """The item's content term of μ (rating points, canonical scale; module docstring)."""
        if item.asked_value is None:
            return 2.0 * item.sign * self.latent(profile, item, interventions)
        jd = profile.doc.judge
        u = self.tables.values.index(item.asked_value)
        moved = self.latent(profile, item, interventions, item.asked_value) - profile.weights[u]
        return 2.0 * (jd.read * self.relevance(profile, item) + jd.lens * moved)

    def answer(self, model: str, messages: Sequence[Any], temperature: float = 0.0) -> Answer:
        """Judge one request deterministically (see the module docstring for the sampling rule)."""
        name, checkpoint = parse_model(model)
        try:
            profile = self.profile(name)
        except VatError as exc:
            raise ValueError(f"sim judge: {exc}") from None
        item, interventions = read_request(messages, self.tables, profile, checkpoint)
        seed, scenes, judge = profile.doc.seed, profile.doc.scenes, profile.doc.judge
        prompt = condition_key(model, item, interventions)
        wording = (item.scene_id, item.action_id) + ((item_asked(item),) if item.asked_value else ())
        mu = (
            3.0
            + judge.attention * self.content(profile, item, interventions)
            + judge.acquiescence
            + scenes.action_sd * normal_draw(seed, "action", *wording)
            + judge.noise * normal_draw(seed, "noise", prompt)
        )
        if item.variant != "base" and judge.wording_sd > 0:
            mu += judge.wording_sd * normal_draw(seed, "wording", item.variant, *wording)
        if item.scale_reversed:
            mu = 6.0 - mu  # the scale as shown: the agree / honours end is the digit 1
        mu += judge.digit_bias
        probs = answer_probs(mu, judge.spread)
        if temperature > 0:
            draw_key = f"{temperature}\x1f{prompt}"
            u = unit_draw(seed, "sample", draw_key, self._asked[draw_key])
            self._asked[draw_key] += 1
            cdf = np.cumsum(answer_probs(mu, judge.spread, temperature))
            rating = int(min(np.searchsorted(cdf, u * cdf[-1]), 4)) + 1
        else:
            rating = int(np.argmax(probs)) + 1
        return Answer(rating, probs, float(mu), item, tuple(interventions))


def condition_key(model: str, item: Item, interventions: Sequence[Intervention]) -> str:
    """The identity an answer's noise is drawn from: model, item, and the condition it is asked under.

    Identities, not text: rewording the judgment prompt or a strategy template does not redraw the
    noise, while the pre and post conditions of an item (and different strategies) draw independently.
    """
    condition = "|".join(sorted(iv.key for iv in interventions)) or "baseline"
    asked = f"@{item_asked(item)}" if item.asked_value else ""
    return f"{model}\x1f{item.scene_id}/{item.action_id}{asked}\x1f{condition}"


def item_asked(item: Item) -> str:
    """The asked value's identity in noise draws: ``value`` or ``value/micro-value``."""
    micro = f"/{item.asked_micro_value}" if item.asked_micro_value else ""
    return f"{item.asked_value}{micro}"


_index: Any = None
_judge: SimJudge | None = None


def configure(index: Any) -> None:
    """Use this spec index to recognise prompts (else ``$VAT_SPEC_DIR`` or ``spec/`` is loaded lazily)."""
    global _index, _judge
    _index, _judge = index, None


def judge() -> SimJudge:
    """The process's simulated judge (built on first use)."""
    global _judge
    if _judge is None:
        index = _index
        if index is None:
            from runner.spec.load import load_index

            index = load_index(os.environ.get("VAT_SPEC_DIR", "spec"), check_lock=False)
        _judge = SimJudge(index)
    return _judge


def logprobs_payload(answer: Answer, top: int) -> dict[str, Any]:
    """OpenAI-shaped logprobs of the answer token: the ``top`` most likely digits with log p."""
    logp = np.log(np.maximum(answer.probs, 1e-300))
    order = np.argsort(-logp, kind="stable")[: max(1, min(top, 5))]
    tops = [{"token": str(int(i) + 1), "logprob": float(logp[i]), "bytes": None} for i in order]
    chosen = answer.rating - 1
    return {
        "content": [
            {"token": str(answer.rating), "logprob": float(logp[chosen]), "bytes": None, "top_logprobs": tops}
        ]
    }


# ---------------------------------------------------------------------------------------------------
# LiteLLM registration
# ---------------------------------------------------------------------------------------------------

_handler: Any = None


def _make_handler() -> Any:
    """Build the LiteLLM custom handler (imports litellm, so only when a ``sim/`` model is used)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from litellm.llms.custom_llm import CustomLLM

    class SimLLM(CustomLLM):
        """LiteLLM face of :class:`SimJudge`."""

        def completion(  # type: ignore[override]  # keyword-only: LiteLLM passes every argument by name
            self,
            *,
            model: str,
            messages: list[Any],
            model_response: Any,
            optional_params: dict[str, Any],
            **_: Any,
        ) -> Any:
            """Answer one request."""
            temperature = float(optional_params.get("temperature") or 0.0)
            ans = judge().answer(model, messages, temperature)
            logprobs = (
                logprobs_payload(ans, int(optional_params.get("top_logprobs") or 5))
                if optional_params.get("logprobs")
                else None
            )
            model_response.choices = [
                litellm.Choices(
                    finish_reason="stop",
                    index=0,
                    message=litellm.Message(role="assistant", content=str(ans.rating)),
                    logprobs=logprobs,
                )
            ]
            tokens = sum(len(content_of(m)) for m in messages) // 4
            model_response.usage = litellm.Usage(
                prompt_tokens=tokens, completion_tokens=1, total_tokens=tokens + 1
            )
            model_response.model = f"{PROVIDER}/{model}"
            return model_response

        async def acompletion(self, **kwargs: Any) -> Any:  # type: ignore[override]
            """Answer one request (no I/O, so no awaiting)."""
            return self.completion(**kwargs)

    return SimLLM()


def register() -> None:
    """Make ``sim/...`` model strings work in LiteLLM (idempotent)."""
    global _handler
    import litellm

    if _handler is None:
        _handler = _make_handler()
    entries = litellm.custom_provider_map
    if not any(e["provider"] == PROVIDER for e in entries):
        entries.append({"provider": PROVIDER, "custom_handler": _handler})
    litellm.utils.custom_llm_setup()
