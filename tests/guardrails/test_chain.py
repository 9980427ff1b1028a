"""Guard chains: first block wins, redaction flows on, fail modes apply when a guard raises or hangs."""

import logging
import time

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
