"""A deterministic, instant LM that answers any DSPy signature — for tests and for measuring framework overhead.

Like `dspy.utils.DummyLM`, but it needs no script: it reads the output fields the adapter asks for and fills each
one. The answer is the first sentence of the context ("coached" prompts — with demos, or an instruction asking for
the exact phrase — get its last two words, which score higher on short gold answers, so optimizers see a signal).
"""

import json
import re

import dspy
from dspy.clients.engines.dummy_engine import AsyncDummyEngine, DummyEngine
from dspy.lm15 import Message, Response, TextPart, Usage
from dspy.utils import DummyLM

_OUTPUTS = re.compile(r"Your output fields are:\n(.*?)\n(?:All interactions|In adhering)", re.S)
_FIELD = re.compile(r"`(\w+)` \(([^)]*)\)")
_SENTENCE = re.compile(r"\n([A-Z][^\n.]*\.)")


def default_reply(name: str, kind: str, prompt: str, coached: bool = False) -> object:
    """A plausible value for an output field: the first context sentence as the answer, text elsewhere.

    `coached` (the prompt carries demos, or an instruction asking for the exact phrase) makes the answer the
    sentence's last two words, which scores higher against the short gold answers: optimizers have a signal.
    """
    if name == "answer":
        found = _SENTENCE.search(prompt.split("[[ ## context ## ]]")[-1])
        if found is None:
            return "I do not know."
        return " ".join(found.group(1).rstrip(".").split()[-2:]) if coached else found.group(1)
    if name == "score":
        return "0.5"
    if kind.startswith("dict"):
        return {"generate": "Answer with the exact phrase from the context."}
    if kind.startswith("list"):
        return ["Answer with the exact phrase from the context."]
    if kind in ("int", "float"):
        return 1
    if kind == "bool":
        return True
    return f"Answer with the exact phrase from the context ({name})."


class FieldLM(DummyLM):
    """Fills every output field the ChatAdapter asks for; a prompt with no fields gets a fenced instruction.

    Reports 10 prompt + 5 completion tokens per call so token budgets can be exercised.
    """

    def __init__(self, reply=default_reply):
        super().__init__([])
        self.reply = reply
        self.calls = 0
        self._engine_spec = _FieldEngine(self)
        self._async_engine_spec = AsyncDummyEngine(self._engine_spec)

    def copy(self, **kwargs):
        copied = super().copy(**kwargs)
        copied._engine_spec = _FieldEngine(copied)
        copied._async_engine_spec = AsyncDummyEngine(copied._engine_spec)
        return copied


class _FieldEngine(DummyEngine):
    def _complete_messages(self, messages):
        owner = self.owner
        owner.calls += 1
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
        prompt = messages[-1]["content"]
        section = _OUTPUTS.search(system)
        coached = len(messages) > 2 or "exact phrase" in system
        if section is None:
            text = "```\nAnswer with the exact phrase from the context.\n```"
        else:
            values = {name: owner.reply(name, kind, prompt, coached) for name, kind in _FIELD.findall(section.group(1))}
            if isinstance(dspy.settings.adapter, dspy.JSONAdapter):
                text = json.dumps(values)
            else:
                values = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in values.items()}
                text = owner._format_answer_fields(values)
        return Response(id=None, model="dummy", message=Message.assistant([TextPart(text)]), finish_reason="stop",
                        usage=Usage(input_tokens=10, output_tokens=5, total_tokens=15))


class TextLM(DummyLM):
    """Replies with `reply(messages)`, the completion text verbatim: for programs whose prompts a test or benchmark
    scripts turn by turn in whatever format the adapter under test reads (the plain adapter's `Label: value` lines,
    the ChatAdapter's `[[ ## field ## ]]` markers)."""

    def __init__(self, reply):
        super().__init__([])
        self.reply = reply
        self.calls = 0
        self._engine_spec = _TextEngine(self)
        self._async_engine_spec = AsyncDummyEngine(self._engine_spec)

    def copy(self, **kwargs):
        copied = super().copy(**kwargs)
        copied._engine_spec = _TextEngine(copied)
        copied._async_engine_spec = AsyncDummyEngine(copied._engine_spec)
        return copied


class _TextEngine(DummyEngine):
    def _complete_messages(self, messages):
        self.owner.calls += 1
        text = self.owner.reply(messages)
        return Response(id=None, model="dummy", message=Message.assistant([TextPart(text)]), finish_reason="stop",
                        usage=Usage(input_tokens=10, output_tokens=5, total_tokens=15))
