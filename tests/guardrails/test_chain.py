"""Guard chains: first block wins, redaction flows on, fail modes apply when a guard raises or hangs, each text gets
its own verdict within its own timeout, and a text no guard could judge is reported as unchecked."""

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from guardrails import chain as chain_module
from guardrails.base import GuardContext, GuardResult
from guardrails.chain import GuardChain, Layer
from guardrails.output import CitationGuard, GroundednessGuard


class Blocker:
    name = "blocker"

    def check(self, text, context=None):
        if "bad" in text:
            return GuardResult.block(self.name, "deny_list", "said bad")
        return GuardResult.allow(self.name)


class Redactor:
    name = "redactor"

    def check(self, text, context=None):
        return GuardResult.allow(self.name, category="pii", redacted_text=text.replace("a@b.io", "[EMAIL]"))


class Spy:
    """Records the text each check receives."""

    name = "spy"

    def __init__(self):
        self.seen = []

    def check(self, text, context=None):
        self.seen.append(text)
        return GuardResult.allow(self.name)


class Broken:
    name = "broken"

    def check(self, text, context=None):
        raise RuntimeError("model file vanished")


class Slow:
    name = "slow"

    def check(self, text, context=None):
        time.sleep(2)
        return GuardResult.allow(self.name)


def test_first_block_stops_the_chain_and_names_the_category():
    chain = GuardChain("input", [Layer(Blocker()), Layer(Redactor())])
    result = chain.run("a bad question")
    assert not result.allowed and result.category == "deny_list"
    assert [r.guard for r in result.results] == ["blocker"]


def test_redacted_text_is_what_later_guards_and_the_caller_see():
    spy = Spy()
    result = GuardChain("input", [Layer(Redactor()), Layer(spy)]).run("mail a@b.io now")
    assert result.allowed and result.text == "mail [EMAIL] now" and spy.seen == ["mail [EMAIL] now"]


def test_a_raising_guard_fails_closed_or_open_as_configured_and_is_logged(caplog):
    with caplog.at_level(logging.WARNING):
        closed = GuardChain("input", [Layer(Broken(), fail="closed")]).run("hi")
        opened = GuardChain("input", [Layer(Broken(), fail="open")]).run("hi")
    assert not closed.allowed and closed.category == "guard_error"
    assert opened.allowed and opened.results[0].category == "guard_error"
    assert "model file vanished" in caplog.text and "failing closed" in caplog.text


def test_a_hung_guard_times_out_with_the_fail_mode():
    started = time.perf_counter()
    result = GuardChain("output", [Layer(Slow(), fail="closed", timeout_s=0.2)]).run("hi")
    assert time.perf_counter() - started < 1.5
    assert not result.allowed and "timed out" in result.results[0].reason


def test_citations_must_point_at_retrieved_chunks():
    guard = CitationGuard()
    ok = guard.check("answer", GuardContext(context_ids=["a", "b"], citations=["a"]))
    bad = guard.check("answer", GuardContext(context_ids=["a", "b"], citations=["a", "z"]))
    assert ok.allowed and not bad.allowed and bad.category == "bad_citation"


def test_groundedness_flags_answers_the_context_does_not_support():
    guard = GroundednessGuard(threshold=0.5)
    context = GuardContext(contexts=["The admin API listens on port 9180. The proxy listens on port 8443."])
    grounded = guard.check("The admin API listens on port 9180.", context)
    invented = guard.check("Bananas ripen faster beside apples in paper bags.", context)
    declined = guard.check("The documents do not say.", context)
    assert grounded.allowed and grounded.category is None
    assert invented.allowed and invented.category == "ungrounded" and invented.scores["groundedness"] < 0.5
    assert declined.category is None
    assert not GroundednessGuard(action="block").check("Bananas ripen in bags.", context).allowed


def test_run_many_checks_all_passages_in_one_batch_and_stops_blocked_ones_early():
    batches = []

    class BatchBlocker(Blocker):
        def check_many(self, texts):
            batches.append(list(texts))
            return [self.check(text) for text in texts]

    spy = Spy()
    outcomes = GuardChain("context", [Layer(BatchBlocker()), Layer(spy)]).run_many(["good one", "bad one", "good two"])
    assert batches == [["good one", "bad one", "good two"]]
    assert [o.allowed for o in outcomes] == [True, False, True]
    assert spy.seen == ["good one", "good two"]


@pytest.fixture
def hang():
    """An event that hung guard calls wait on; set when the test ends, so no thread outlives it."""
    release = threading.Event()
    yield release
    release.set()


class ScriptedGuard:
    """Blocks a text that says evil; any call that includes a text saying huge hangs (a slow batch), one that
    includes crash raises. `check_many` checks a whole batch in one call, as the injection guard does."""

    name = "scripted"

    def __init__(self, hang):
        self.hang = hang
        self.batches = []

    def check(self, text, context=None):
        return self.check_many([text])[0]

    def check_many(self, texts):
        self.batches.append(list(texts))
        if any("crash" in text for text in texts):
            raise ValueError(f"cannot read {texts!r}")
        if any("huge" in text for text in texts):
            self.hang.wait()
        return [GuardResult.block(self.name, "deny_list", "said evil") if "evil" in text else GuardResult.allow(self.name)
                for text in texts]


class Hung:
    name = "hung"

    def __init__(self, hang):
        self.hang = hang

    def check(self, text, context=None):
        self.hang.wait()
        return GuardResult.allow(self.name)


PASSAGES = ["a good passage", "an evil passage", "a huge passage"]


def test_a_slow_batch_still_gives_each_text_its_own_verdict_when_failing_open(hang, caplog):
    guard = ScriptedGuard(hang)
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING):
        outcomes = GuardChain("context", [Layer(guard, fail="open", timeout_s=0.2)]).run_many(PASSAGES)
    assert time.perf_counter() - started < 1.5
    assert [o.allowed for o in outcomes] == [True, False, True]
    assert outcomes[1].category == "deny_list" and outcomes[1].unchecked == []
    assert outcomes[0].unchecked == [] and outcomes[2].unchecked == ["scripted"]
    assert "could not check 1 of 3 text(s), they go on unchecked" in caplog.text


def test_a_slow_batch_fails_closed_only_for_the_text_that_was_not_checked(hang):
    outcomes = GuardChain("context", [Layer(ScriptedGuard(hang), fail="closed", timeout_s=0.2)]).run_many(PASSAGES)
    assert [o.allowed for o in outcomes] == [True, False, False]
    assert [o.category for o in outcomes] == [None, "deny_list", "guard_error"]
    assert not outcomes[2].results[0].checked and "timed out after 0.2s" in outcomes[2].results[0].reason


def test_a_raising_batch_is_retried_text_by_text():
    guard = ScriptedGuard(threading.Event())
    outcomes = GuardChain("context", [Layer(guard, fail="open")]).run_many(["fine", "evil", "crash me"])
    assert [o.allowed for o in outcomes] == [True, False, True]
    assert [o.unchecked for o in outcomes] == [[], [], ["scripted"]]
    assert guard.batches[0] == ["fine", "evil", "crash me"] and len(guard.batches) == 4


def test_an_error_message_quoting_the_text_does_not_leak_it_into_reasons_or_logs(caplog):
    class Quoting:
        name = "quoting"

        def check(self, text, context=None):
            raise ValueError(f"cannot parse {text}")

    with caplog.at_level(logging.WARNING):
        result = GuardChain("input", [Layer(Quoting(), fail="closed")]).run("mail jane.doe@example.com")
    assert "ValueError: cannot parse [text]" in result.results[0].reason
    assert "jane.doe@example.com" not in result.results[0].reason and "jane.doe@example.com" not in caplog.text


def test_hung_calls_do_not_starve_other_guards(hang):
    hung = GuardChain("input", [Layer(Hung(hang), fail="open", timeout_s=0.05)])
    for _ in range(6):  # more hung calls than the old shared pool had threads
        assert hung.run("hi").unchecked == ["hung"]
    fast = GuardChain("input", [Layer(Blocker(), fail="open", timeout_s=0.5)]).run("a bad question")
    assert not fast.allowed and fast.category == "deny_list" and fast.unchecked == []


def test_a_guard_with_too_many_overdue_calls_fails_at_once_until_they_end(hang, monkeypatch):
    monkeypatch.setattr(chain_module, "MAX_OVERDUE_CALLS", 2)
    guard = Hung(hang)
    for _ in range(2):
        GuardChain("input", [Layer(guard, timeout_s=0.05)]).run("hi")
    started = time.perf_counter()
    refused = GuardChain("input", [Layer(guard, timeout_s=5)]).run("hi")
    assert time.perf_counter() - started < 1
    assert not refused.allowed and "still has 2 calls running past their timeout" in refused.results[0].reason
    hang.set()
    deadline = time.monotonic() + 5
    while GuardChain("input", [Layer(guard, timeout_s=1)]).run("hi").unchecked and time.monotonic() < deadline:
        time.sleep(0.01)
    assert GuardChain("input", [Layer(guard, timeout_s=1)]).run("hi").allowed


def test_a_process_with_a_guard_that_never_returns_still_exits(tmp_path):
    script = textwrap.dedent(
        """
        import threading
        from guardrails.chain import GuardChain, Layer

        class Never:
            name = "never"

            def check(self, text, context=None):
                threading.Event().wait()

        result = GuardChain("input", [Layer(Never(), fail="closed", timeout_s=0.2)]).run("hi")
        print(result.allowed, result.unchecked)
        """
    )
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=90)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False ['never']"
