"""Llama Guard 3 as a guard: builds Meta's prompt for a User or Agent turn, runs the model, and reads its verdict.

Following the model card, the score is the probability of the first generated token: `p_unsafe` compares the
"unsafe" and "safe" tokens, and a threshold on it decides, so a deployment can trade recall for false positives.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from types import MappingProxyType
from typing import Any, Literal

from guardrails.base import GuardContext, GuardResult
from guardrails.errors import GuardConfigError

log = logging.getLogger(__name__)

Role = Literal["User", "Agent"]
Unparseable = Literal["safe", "unsafe"]
ROLES: tuple[Role, ...] = ("User", "Agent")

# A Llama Guard model's own chat template contains its whole prompt; it cannot wrap ours.
_GUARD_TEMPLATE_MARKER = "<BEGIN UNSAFE CONTENT CATEGORIES>"
_LLAMA3_HEADER_TOKEN = "<|start_header_id|>"
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_CODE = re.compile(r"s(\d{1,2})", re.IGNORECASE)
_FIRST_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class HazardCategory:
    """One hazard of the Llama Guard 3 taxonomy: `name` as the model card gives it, `prompt_name` as the prompt does."""

    code: str
    name: str
    prompt_name: str
    description: str


def _load_policy() -> tuple[str, str, Mapping[str, HazardCategory]]:
    text = resources.files("guardrails.data").joinpath("llama_guard.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    categories = {entry["code"]: HazardCategory(**entry) for entry in data["categories"]}
    return data["prompt"], data["llama3_turn"], MappingProxyType(categories)


PROMPT_TEMPLATE, _LLAMA3_TURN, HAZARD_CATEGORIES = _load_policy()


def enabled_categories(categories: Iterable[str] | None = None) -> tuple[str, ...]:
    """The category codes to check, in taxonomy order; `None` enables all fourteen. Codes are case-insensitive."""
    if categories is None:
        return tuple(HAZARD_CATEGORIES)
    if isinstance(categories, str):
        categories = [categories]
    wanted = {code.strip().upper() for code in categories}
    unknown = sorted(wanted - HAZARD_CATEGORIES.keys())
    if unknown:
        raise GuardConfigError(
            f"Unknown Llama Guard categories {unknown}. Use codes from S1 to S14: "
            + ", ".join(f"{c.code} {c.name}" for c in HAZARD_CATEGORIES.values())
        )
    if not wanted:
        raise GuardConfigError("No Llama Guard category is enabled. Pass at least one code (S1 to S14), or None for all.")
    return tuple(code for code in HAZARD_CATEGORIES if code in wanted)


def build_prompt(
    conversation: Sequence[str],
    role: Role | None = None,
    categories: Iterable[str] | None = None,
    *,
    descriptions: bool = False,
) -> str:
    """Meta's Llama Guard 3 task prompt for a conversation, before any chat template.

    `conversation` alternates User and Agent turns, starting with the User. `role` says whose last message is
    assessed; by default the role of the last turn. Disabled categories are left out of the list and the
    others keep their official codes (S9 stays S9). `descriptions` adds each category's description under its
    line, as Meta's recipes do for a custom policy.
    """
    if isinstance(conversation, str) or not conversation:
        raise ValueError("The conversation must be a non-empty list of turns (User, Agent, User, ...).")
    if role is None:
        role = ROLES[(len(conversation) - 1) % 2]
    if role not in ROLES:
        raise ValueError(f"role must be 'User' or 'Agent', not {role!r}.")
    if role == "Agent" and len(conversation) < 2:
        raise ValueError("role='Agent' needs an Agent turn: pass [question, answer].")
    lines = []
    for code in enabled_categories(categories):
        category = HAZARD_CATEGORIES[code]
        line = f"{code}: {category.prompt_name}."
        lines.append(f"{line}\n{category.description}" if descriptions else line)
    turns = [f"{ROLES[index % 2]}: {message.strip()}" for index, message in enumerate(conversation)]
    return Template(PROMPT_TEMPLATE).substitute(role=role, categories="\n".join(lines), conversation="\n\n".join(turns))


def _parse(text: str, enabled: Sequence[str]) -> tuple[bool, list[str]] | None:
    """`(safe, categories)` when the text reads as a Llama Guard verdict, else None."""
    stripped = text.strip().lower()
    first = _FIRST_WORD.match(stripped)
    if first is None or first.group() not in ("safe", "unsafe"):
        return None
    if first.group() == "safe":
        return True, []
    codes = []
    for token in re.split(r"[\s,;]+", stripped[first.end():]):
        match = _CODE.fullmatch(token.strip(".:"))
        code = f"S{int(match.group(1))}" if match else None
        if code in enabled and code not in codes:
            codes.append(code)
    return False, sorted(codes, key=enabled.index)


def parse_verdict(
    text: str, categories: Iterable[str] | None = None, on_unparseable: Unparseable = "unsafe"
) -> tuple[bool, list[str]]:
    """Read Llama Guard's output: `(safe, violated category codes)`.

    Whitespace and case do not matter ("  UNSAFE \\n s10 " is unsafe, S10). Only codes among the enabled
    `categories` are kept; others are dropped, the verdict stays unsafe. Output that starts with neither
    "safe" nor "unsafe" is judged as `on_unparseable` says, with no categories.
    """
    if on_unparseable not in ("safe", "unsafe"):
        raise GuardConfigError(f"on_unparseable must be 'safe' or 'unsafe', not {on_unparseable!r}.")
    parsed = _parse(text, enabled_categories(categories))
    if parsed is None:
        return on_unparseable == "safe", []
    return parsed


@dataclass(frozen=True)
class LlamaGuardVerdict:
    """What one classification found: the decision, the categories the model named, the score and the raw output."""

    safe: bool
    categories: tuple[str, ...]
    p_unsafe: float
    output: str
    parsed: bool


@dataclass
class GuardModel:
    """A causal LM and its tokenizer, loaded once per process; the lock serialises generation."""

    model: Any
    tokenizer: Any
    lock: threading.Lock


GgufLoader = Callable[[str], Any]
"""Loads a .gguf file as something with `model`, `tokenizer` and `lock` (the pipeline passes its cached loader)."""


def load_guard_model(model: str, load_gguf: GgufLoader | None = None) -> GuardModel:
    """Load a guard model from a .gguf file, a local folder, or a Hugging Face name already in the local cache."""
    path = Path(model).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise GuardConfigError(
                f"The Llama Guard model file {path} does not exist. Pass an existing .gguf file or model folder."
            )
        try:
            # The pipeline passes the embedded LM's loader: a GGUF used for both is loaded (and de-quantised) once.
            return load_gguf(str(path)) if load_gguf is not None else _load_pretrained(str(path.parent), path.name)
        except GuardConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - the loader is passed in; any failure means the same to the user
            raise GuardConfigError(f"{exc}. Pass a Llama Guard GGUF file that transformers can read.") from exc
    if path.is_dir():
        return _load_pretrained(str(path.resolve()))
    if not _HUB_NAME.fullmatch(model):
        raise GuardConfigError(
            f"The Llama Guard model folder {path} does not exist. Pass an existing model folder or .gguf file."
        )
    return _load_pretrained(model)


@functools.lru_cache(maxsize=2)
def _load_pretrained(source: str, gguf_file: str | None = None) -> GuardModel:
    """A transformers model folder (or cached hub name), loaded once per process and never from the network."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("loading Llama Guard model from %s", source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file, local_files_only=True, dtype="auto")
    except (OSError, ValueError) as exc:
        if Path(source).is_dir():
            raise GuardConfigError(
                f"The folder {source} holds no causal LM that transformers can load ({exc}). Pass a folder with "
                "config.json, the tokenizer files and the weights of a Llama Guard model, or a .gguf file."
            ) from exc
        raise GuardConfigError(
            f"Cannot load the Llama Guard model {source!r} offline: it is neither a local folder nor a model in the "
            f"Hugging Face cache ({exc.__class__.__name__}). On a machine with network access run "
            f"`huggingface-cli download {source} --local-dir DIR`, copy DIR here and pass it as the model."
        ) from exc
    model.eval()
    return GuardModel(model=model, tokenizer=tokenizer, lock=threading.Lock())


class LlamaGuard:
    """A Guard that asks a Llama Guard 3 model whether a user question or an agent answer is unsafe.

    Steps: build Meta's prompt for the enabled categories, wrap it in the model's chat template, generate
    greedily, take `p_unsafe` from the first step's logits, block when `p_unsafe >= threshold`, and name the
    categories the model listed. Output that is neither "safe" nor "unsafe" is judged as `on_unparseable`.
    """

    def __init__(
        self,
        model: str,
        categories: Iterable[str] | None = None,
        threshold: float = 0.5,
        max_new_tokens: int = 10,
        name: str = "llama_guard",
        on_unparseable: Unparseable = "unsafe",
        load_gguf: GgufLoader | None = None,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise GuardConfigError(f"The Llama Guard threshold must lie in [0, 1], not {threshold}.")
        if max_new_tokens < 1:
            raise GuardConfigError(f"max_new_tokens must be at least 1, not {max_new_tokens}.")
        if on_unparseable not in ("safe", "unsafe"):
            raise GuardConfigError(f"on_unparseable must be 'safe' or 'unsafe', not {on_unparseable!r}.")
        self.categories = enabled_categories(categories)
        self.threshold = threshold
        self.max_new_tokens = max_new_tokens
        self.name = name
        self.on_unparseable = on_unparseable
        self._local = load_guard_model(model, load_gguf)
        self._unsafe_id, self._safe_id = self._first_token_ids(self._local.tokenizer)
        self._wrapping = self._prompt_wrapping(self._local.tokenizer)

    @staticmethod
    def _first_token_ids(tokenizer: Any) -> tuple[int, int]:
        unsafe = tokenizer.encode("unsafe", add_special_tokens=False)
        safe = tokenizer.encode("safe", add_special_tokens=False)
        if not unsafe or not safe or unsafe[0] == safe[0]:
            raise GuardConfigError(
                "This model's tokenizer does not start 'safe' and 'unsafe' with different tokens, "
                "so it cannot score a Llama Guard verdict. Pass a Llama Guard model."
            )
        return unsafe[0], safe[0]

    @staticmethod
    def _prompt_wrapping(tokenizer: Any) -> Literal["chat_template", "llama3_turn", "bare"]:
        """How the prompt becomes model input: the model's chat template, unless it is a Llama Guard template."""
        template = getattr(tokenizer, "chat_template", None)
        if template and _GUARD_TEMPLATE_MARKER not in str(template):
            return "chat_template"
        if _LLAMA3_HEADER_TOKEN in tokenizer.get_vocab():
            return "llama3_turn"
        return "bare"

    def _model_input(self, prompt: str) -> dict[str, Any]:
        tokenizer = self._local.tokenizer
        if self._wrapping == "chat_template":
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
            )
        elif self._wrapping == "llama3_turn":
            text = Template(_LLAMA3_TURN).substitute(prompt=prompt)
        else:
            text = prompt
        # Chat-formatted text already carries its special tokens; a bare prompt still needs the BOS token.
        encoded = tokenizer(text, return_tensors="pt", add_special_tokens=self._wrapping == "bare")
        device = self._local.model.device
        return {key: value.to(device) for key, value in encoded.items()}

    def classify(self, conversation: Sequence[str], role: Role | None = None) -> LlamaGuardVerdict:
        """Judge the last `role` message of a conversation (User, Agent, User, ...); by default the last turn's."""
        import torch

        inputs = self._model_input(build_prompt(conversation, role, self.categories))
        tokenizer = self._local.tokenizer
        prompt_tokens = int(inputs["input_ids"].shape[1])
        with self._local.lock, torch.inference_mode():
            output = self._local.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                output_logits=True,
                return_dict_in_generate=True,
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
            )
        first_step = output.logits[0][0].float()
        pair = torch.stack([first_step[self._unsafe_id], first_step[self._safe_id]])
        p_unsafe = float(torch.softmax(pair, dim=0)[0])
        text = tokenizer.decode(output.sequences[0, prompt_tokens:], skip_special_tokens=True)
        parsed = _parse(text, self.categories)
        if parsed is None:
            log.warning("Llama Guard output is neither 'safe' nor 'unsafe': %r", text[:80])
            return LlamaGuardVerdict(self.on_unparseable == "safe", (), p_unsafe, text, parsed=False)
        return LlamaGuardVerdict(p_unsafe < self.threshold, tuple(parsed[1]), p_unsafe, text, parsed=True)

    def check(self, text: str, context: GuardContext | None = None) -> GuardResult:
        """A user turn when there is no question in the context, else the answer as the Agent turn after it."""
        if context is None or context.question is None:
            conversation, role = [text], "User"
        else:
            conversation, role = [context.question, text], "Agent"
        verdict = self.classify(conversation, role)
        scores = {"p_unsafe": verdict.p_unsafe}
        if verdict.safe:
            return GuardResult.allow(self.name, scores=scores)
        if not verdict.parsed:
            reason = (
                f"Llama Guard's output {verdict.output.strip()[:60]!r} is neither 'safe' nor 'unsafe'; "
                f"treated as unsafe (on_unparseable='unsafe')."
            )
            return GuardResult.block(self.name, "unsafe", reason, scores=scores)
        named = ", ".join(f"{code} {HAZARD_CATEGORIES[code].name}" for code in verdict.categories)
        reason = (
            f"Llama Guard judged the {role} message unsafe"
            + (f" ({named})" if named else "")
            + f": p_unsafe={verdict.p_unsafe:.2f} >= threshold {self.threshold:.2f}."
        )
        category = "unsafe:" + ",".join(verdict.categories) if verdict.categories else "unsafe"
        return GuardResult.block(self.name, category, reason, scores=scores)
