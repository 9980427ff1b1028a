"""The answer field cut out of a completion as it streams: never more than the adapter will parse as the answer."""

import dspy
import pytest

from pipeline.lm.plain_adapter import MarkerStopChatAdapter, PlainAdapter
from pipeline.serving.answer_stream import AnswerCutter

CHAT = "[[ ## answer ## ]]\nThe admin API listens on port 8443.\n\n[[ ## completed ## ]]\n"
PLAIN = "Answer: The admin API listens on port 8443.\n\nQuestion: what next?"


def shown_while_streaming(cutter: AnswerCutter, completion: str) -> list[str]:
    return [cutter.visible(completion[:end]) for end in range(len(completion) + 1)]


@pytest.mark.parametrize("adapter", [None, dspy.ChatAdapter(), MarkerStopChatAdapter()], ids=["default", "chat", "marker-stop"])
def test_the_chat_family_streams_the_text_between_the_answer_marker_and_the_next(adapter):
    cutter = AnswerCutter(adapter)
    shown = shown_while_streaming(cutter, CHAT)

    parsed = dspy.ChatAdapter().parse(dspy.Signature("question -> answer"), CHAT)["answer"]
    assert shown[-1] == parsed == "The admin API listens on port 8443."
    assert all(parsed.startswith(text) for text in shown)  # nothing shown that the parse then drops
    assert cutter.visible("[[ ## answer ## ]]\nThe admin [") == "The admin"


def test_the_plain_adapter_streams_the_first_paragraph_without_its_label():
    cutter = AnswerCutter(PlainAdapter())
    shown = shown_while_streaming(cutter, PLAIN)

    parsed = PlainAdapter().parse(dspy.Signature("context, question -> answer"), PLAIN)["answer"]
    assert shown[-1] == parsed == "The admin API listens on port 8443."
    assert all(parsed.startswith(text) for text in shown)
    assert cutter.visible("Ans") == "" and cutter.visible("Port 8443") == "Port 8443"


def test_an_adapter_whose_partial_answer_cannot_be_cut_streams_nothing():
    assert AnswerCutter(dspy.JSONAdapter()).visible('{"answer": "Port 8443"') == ""
