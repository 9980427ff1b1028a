"""The DSPy adapters embedded models follow. A 135M model needs a plain prompt and a lenient parse; the Qwen models
fill DSPy's ChatAdapter markers and get it with a stop at its closing marker (`adapter_for` picks per model).

DSPy's Chat and JSON adapters ask for `[[ ## field ## ]]` markers or JSON that SmolLM2-135M does
not produce (measured: 0 of 10 RAG probes parse), so `dspy.Predict` would fail. Here the prompt is "Field: value"
lines, and a signature with one output field takes the whole completion as that field.

A short-answer field (`answer` by default) is one paragraph: generation stops at the first blank line
and the parse keeps the first paragraph. The 135M model otherwise goes on after its answer, echoing a
context passage or inventing the next question (on the demo QA set, cutting there lifts token F1 of the
compiled program from 0.096 to 0.151).
"""

from __future__ import annotations

import re
from typing import Any

import dspy
from dspy.adapters.base import Adapter
from dspy.signatures.signature import Signature

from pipeline.lm.models import embedded_model

MISSING = "(not given)"
COMPLETED_MARKER = "[[ ## completed ## ]]"
PARAGRAPH_END = "\n\n"


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _render(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(item) for item in value)
    return str(value)


class PlainAdapter(Adapter):
    """Formats instructions, demos and inputs as short "Label: value" blocks; parses leniently."""

    def __init__(self, paragraph_fields: tuple[str, ...] = ("answer",), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.paragraph_fields = paragraph_fields

    def _one_paragraph(self, signature: type[Signature]) -> bool:
        names = list(signature.output_fields)
        return len(names) == 1 and names[0] in self.paragraph_fields

    def _with_stop(self, lm_kwargs: dict[str, Any], signature: type[Signature]) -> dict[str, Any]:
        return {"stop": [PARAGRAPH_END], **lm_kwargs} if self._one_paragraph(signature) else lm_kwargs

    def __call__(self, lm, lm_kwargs, signature, demos, inputs):
        return super().__call__(lm, self._with_stop(lm_kwargs, signature), signature, demos, inputs)

    async def acall(self, lm, lm_kwargs, signature, demos, inputs):
        return await super().acall(lm, self._with_stop(lm_kwargs, signature), signature, demos, inputs)

    def format_field_description(self, signature: type[Signature]) -> str:
        return ""

    def format_field_structure(self, signature: type[Signature]) -> str:
        return ""

    def format_task_description(self, signature: type[Signature]) -> str:
        return signature.instructions

    def format_system_message(self, signature: type[Signature]) -> str:
        return signature.instructions.strip()

    def format_user_message_content(
        self,
        signature: type[Signature],
        inputs: dict[str, Any],
        prefix: str = "",
        suffix: str = "",
        main_request: bool = False,
    ) -> str:
        # Demos from labelled examples lack intermediate inputs such as `context`; they are kept and
        # marked rather than dropped, or a compile would change nothing for a small model.
        lines = [
            f"{_label(name)}: {_render(inputs[name]) if inputs.get(name) is not None else MISSING}"
            for name in signature.input_fields
        ]
        return "\n".join(lines)

    def format_assistant_message_content(
        self,
        signature: type[Signature],
        outputs: dict[str, Any],
        missing_field_message: str | None = None,
    ) -> str:
        names = list(signature.output_fields)
        if len(names) == 1:
            value = outputs.get(names[0])
            return _render(value) if value is not None else MISSING
        return "\n".join(
            f"{_label(name)}: {_render(outputs[name]) if outputs.get(name) is not None else MISSING}"
            for name in names
        )

    def format_demos(self, signature: type[Signature], demos: list[dict[str, Any]]) -> list[dict[str, Any]]:
        messages = []
        for demo in demos:
            if not any(k in demo for k in signature.input_fields) or not any(k in demo for k in signature.output_fields):
                continue
            messages.append({"role": "user", "content": self.format_user_message_content(signature, demo)})
            messages.append({"role": "assistant", "content": self.format_assistant_message_content(signature, demo)})
        return messages

    def parse(self, signature: type[Signature], completion: str) -> dict[str, Any]:
        names = list(signature.output_fields)
        text = completion.strip()
        if len(names) == 1:
            value = _strip_label(text, names[0])
            if self._one_paragraph(signature):
                value = value.split(PARAGRAPH_END)[0].strip()
            return {names[0]: value}
        return _parse_labelled(text, names)


def _strip_label(text: str, name: str) -> str:
    match = re.match(rf"^\s*{re.escape(_label(name))}\s*:\s*", text, flags=re.IGNORECASE)
    return text[match.end():].strip() if match else text


def _parse_labelled(text: str, names: list[str]) -> dict[str, Any]:
    pattern = re.compile(
        r"^\s*(" + "|".join(re.escape(_label(n)) for n in names) + r")\s*:\s*", flags=re.IGNORECASE | re.MULTILINE
    )
    by_label = {_label(n).lower(): n for n in names}
    matches = list(pattern.finditer(text))
    values: dict[str, Any] = {}
    if matches and matches[0].start() > 0:
        values[names[0]] = text[: matches[0].start()].strip()
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        values.setdefault(by_label[match.group(1).lower()], text[match.end():end].strip())
    if not matches:
        values[names[0]] = text
    for name in names:
        values.setdefault(name, "")
    return values


class MarkerStopChatAdapter(dspy.ChatAdapter):
    """DSPy's ChatAdapter, with generation stopped at its closing `[[ ## completed ## ]]` marker.

    Qwen2.5-Coder-1.5B writes that marker on the answer's own line in 3 to 4 of 10 RAG probes, and ChatAdapter, which
    finds markers at line starts only, then keeps it inside the answer; stopping there also saves its ~8 tokens.
    """

    def __call__(self, lm, lm_kwargs, signature, demos, inputs):
        return super().__call__(lm, {"stop": [COMPLETED_MARKER], **lm_kwargs}, signature, demos, inputs)

    async def acall(self, lm, lm_kwargs, signature, demos, inputs):
        return await super().acall(lm, {"stop": [COMPLETED_MARKER], **lm_kwargs}, signature, demos, inputs)


def adapter_for(model: str) -> dspy.Adapter | None:
    """The adapter a model follows: for embedded models the one its registry entry names (the plain adapter for
    SmolLM2, which misses DSPy's field markers; the marker-stopping ChatAdapter for Qwen, which fills them);
    None (DSPy's default adapters) for hosted models."""
    if not model.startswith("local/"):
        return None
    return PlainAdapter() if embedded_model(model).adapter == "plain" else MarkerStopChatAdapter()
