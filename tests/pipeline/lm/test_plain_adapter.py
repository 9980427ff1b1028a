"""The plain adapter: prompts a small model can follow, lenient parsing, incomplete demos kept."""

import dspy
from dspy.utils import DummyLM

from pipeline.lm.plain_adapter import MarkerStopChatAdapter, PlainAdapter, adapter_for
from signatures import AnswerFromContext


class TwoOutputs(dspy.Signature):
    """Classify the text."""

    text: str = dspy.InputField()
    label: str = dspy.OutputField()
    reason: str = dspy.OutputField()


def test_single_output_takes_the_whole_completion():
    adapter = PlainAdapter()
    assert adapter.parse(AnswerFromContext, "  The admin port is 9180.  ") == {"answer": "The admin port is 9180."}
    assert adapter.parse(AnswerFromContext, "Answer: 9180") == {"answer": "9180"}


def test_multiple_outputs_are_read_from_labels_and_missing_ones_are_empty():
    adapter = PlainAdapter()
    assert adapter.parse(TwoOutputs, "Label: spam\nReason: it sells pills") == {"label": "spam", "reason": "it sells pills"}
    assert adapter.parse(TwoOutputs, "spam") == {"label": "spam", "reason": ""}


def test_prompt_is_plain_and_demos_missing_context_are_kept_and_marked():
    adapter = PlainAdapter()
    demos = [{"question": "Default admin port?", "answer": "9180"}]
    messages = adapter.format(AnswerFromContext, demos, {"context": "[1] text", "question": "Proxy port?"})
    assert messages[0]["role"] == "system" and "Answer the question" in messages[0]["content"]
    assert messages[1] == {"role": "user", "content": "Context: (not given)\nQuestion: Default admin port?"}
    assert messages[2] == {"role": "assistant", "content": "9180"}
    assert messages[3]["content"] == "Context: [1] text\nQuestion: Proxy port?"
    assert "[[ ##" not in "".join(m["content"] for m in messages)


def test_predict_with_the_plain_adapter_returns_the_raw_answer():
    lm = DummyLM([{"answer": "It is 9180."}])
    with dspy.context(lm=lm, adapter=PlainAdapter()):
        prediction = dspy.Predict(AnswerFromContext)(context="c", question="q")
    assert "9180" in prediction.answer


def test_smollm2_gets_the_plain_adapter_qwen_the_chat_adapter_and_hosted_models_dspy_defaults():
    assert isinstance(adapter_for("local/smollm2"), PlainAdapter)
    assert type(adapter_for("local/qwen2.5-coder-0.5b")) is MarkerStopChatAdapter
    assert adapter_for("openai/gpt-4.1-mini") is None


def test_a_short_answer_stops_at_the_first_blank_line_other_outputs_do_not():
    class Recording(DummyLM):
        def __init__(self, answers):
            super().__init__(answers)
            self.kwargs_seen = []

        def forward(self, prompt=None, messages=None, **kwargs):
            self.kwargs_seen.append(kwargs)
            return super().forward(prompt=prompt, messages=messages, **kwargs)

    lm = Recording([{"answer": "Port 9180.\n\n[4] (ports.md) echoed passage"}, {"summary": "One.\n\nTwo."}])
    with dspy.context(lm=lm, adapter=PlainAdapter()):
        answer = dspy.Predict(AnswerFromContext)(context="c", question="q").answer
        summary = dspy.Predict("text -> summary")(text="t").summary
    assert answer.endswith("Port 9180.") and "echoed" not in answer
    assert summary.endswith("One.\n\nTwo.")
    assert lm.kwargs_seen[0].get("stop") == ["\n\n"] and "stop" not in lm.kwargs_seen[1]


class _CompletionEngine:
    """Returns one fixed completion, cut at the request's stop strings the way the embedded engine cuts them."""

    def __init__(self, completion: str) -> None:
        self.completion = completion
        self.stops: list[tuple[str, ...]] = []

    def complete(self, request):
        from dspy.lm15 import Message, Response, TextPart, Usage

        from pipeline.lm.embedded import cut_at_stops

        self.stops.append(tuple(request.config.stop))
        text = cut_at_stops(self.completion, list(request.config.stop))
        return Response(id=None, model="local/qwen2.5-coder-1.5b", message=Message.assistant([TextPart(text)]),
                        finish_reason="stop", usage=Usage(input_tokens=1, output_tokens=1, total_tokens=2))

    def stream(self, request):
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))


def test_qwen_gets_a_chat_adapter_that_keeps_an_inline_completed_marker_out_of_the_answer():
    engine = _CompletionEngine("[[ ## answer ## ]] It listens on port 9180. [[ ## completed ## ]]")
    lm = dspy.LM("local/qwen2.5-coder-1.5b", engine=engine, cache=False)
    adapter = adapter_for("local/qwen2.5-coder-1.5b")
    with dspy.context(lm=lm, adapter=adapter):
        answer = dspy.Predict(AnswerFromContext)(context="c", question="q").answer
    assert isinstance(adapter, dspy.ChatAdapter)
    assert answer == "It listens on port 9180."
    assert engine.stops == [("[[ ## completed ## ]]",)]
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):  # what DSPy's own adapter would have shown the user
        assert "completed" in dspy.Predict(AnswerFromContext)(context="c", question="q").answer
