"""The embedded engine streams its completion token by token, and the streamed text is the completion it returns;
the paced scripted LM streams word by word."""

import time

import dspy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError
from pipeline.lm.embedded import cut_at_stops, drop_repeated_lines, stream_safe_prefix
from pipeline.lm.paced import scripted_lm
from pipeline.serving.answer_stream import Delta, Finished, stream_program
from signatures import AnswerFromContext

PIECES = st.sampled_from(["c", "ab", " ", "\n", "\n\n", "\r\n", "[", "[[ ##", " ## ]]", "x.", "\t", "\ufffd"])
STOPS = st.sampled_from([[], ["\n\n"], ["[[ ## completed"], ["\n\n", "ab"]])


@settings(max_examples=3000, deadline=None)
@given(st.lists(PIECES, max_size=14), STOPS)
def test_what_is_streamed_is_never_taken_back_by_the_finished_completion(pieces, stops):
    final = cut_at_stops(drop_repeated_lines("".join(pieces)), stops)
    raw, shown_before = "", ""
    for piece in pieces:
        raw += piece
        shown = stream_safe_prefix(raw, stops)
        assert final.startswith(shown) and shown.startswith(shown_before)
        shown_before = shown


def test_a_line_that_may_still_repeat_an_earlier_one_is_held_back():
    written = "The port is 8443.\nIt needs a certificate.\nThe port"

    assert stream_safe_prefix(written, ["\n\n"]) == "The port is 8443.\nIt needs a certificate."
    assert stream_safe_prefix(written + " can change.", ["\n\n"]).endswith("The port can change.")
    assert stream_safe_prefix("Port 8443.\n", ["\n\n"]) == "Port 8443."  # the newline waits for what follows


def test_the_scripted_lm_is_named_by_its_latency():
    assert scripted_lm("scripted/25").latency_s == 0.025
    for bad in ("scripted/", "scripted/fast", "scripted/-5", "scripted/700000"):
        with pytest.raises(ConfigError, match="scripted/50"):
            scripted_lm(bad)


def test_the_scripted_lm_streams_the_answer_word_by_word_within_its_latency():
    program = dspy.Predict(AnswerFromContext)
    context = "[1] (admin.md)\nThe admin API listens on port 8443."

    started = time.perf_counter()
    items = list(stream_program(program, lm=scripted_lm("scripted/200"), adapter=None, context=context,
                                question="Which port?"))
    elapsed = time.perf_counter() - started

    deltas = [item.text for item in items if isinstance(item, Delta)]
    assert isinstance(items[-1], Finished) and len(deltas) > 3
    assert "".join(deltas) == items[-1].prediction.answer == "The admin API listens on port 8443."
    assert 0.2 <= elapsed < 2


@pytest.mark.slow
def test_smollm2_streams_several_deltas_that_join_to_the_answer(smollm2):
    from pipeline.lm.plain_adapter import PlainAdapter

    program = dspy.Predict(AnswerFromContext)
    context = "[1] (admin.md > Admin API)\nThe admin API listens on port 8443 and needs a client certificate."

    items = list(stream_program(program, lm=smollm2, adapter=PlainAdapter(), context=context,
                                question="Which port does the admin API listen on?"))

    deltas = [item.text for item in items if isinstance(item, Delta)]
    final = items[-1].prediction.answer
    assert len(deltas) > 1, deltas
    assert "".join(deltas) == final and final.strip()
