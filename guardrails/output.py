"""Output checks that need the retrieved context: citations must point at retrieved chunks, and the answer
must be supported by the context."""

from __future__ import annotations

import re

from guardrails.base import GuardContext, GuardResult
from guardrails.normalize import content_terms

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_NOT_IN_DOCS = re.compile(r"\b(do(es)? not|don't|doesn't) (say|mention|contain|cover)|\bno (information|mention)\b", re.I)


class CitationGuard:
    """Blocks an answer that cites a chunk id the program did not retrieve (a hallucinated citation)."""

    name = "citations"

    def check(self, text: str, context: GuardContext | None = None) -> GuardResult:
        if context is None:
            return GuardResult.allow(self.name)
        retrieved = set(context.context_ids)
        unknown = [cid for cid in context.citations if cid not in retrieved]
        scores = {"citations": float(len(context.citations)), "unknown": float(len(unknown))}
        if unknown:
            return GuardResult.block(
                self.name, "bad_citation", f"{len(unknown)} cited chunk(s) were not retrieved", scores=scores
            )
        return GuardResult.allow(self.name, scores=scores)


class GroundednessGuard:
    """Flags (or blocks) an answer whose sentences are not supported by the retrieved context.

    Scoring: 1. split the answer into sentences; 2. a sentence's support is the share of its content terms
    (BM25 tokenisation: lower-cased, stop words removed, plurals stemmed) that occur in the context;
    3. the score is the mean support over sentences, in [0, 1]; 4. an answer that says the documents do not
    cover the question counts as grounded. Below `threshold` the answer is `ungrounded`.
    """

    name = "groundedness"

    def __init__(self, threshold: float = 0.5, action: str = "flag") -> None:
        if action not in ("flag", "block"):
            raise ValueError(f"action must be 'flag' or 'block', not {action!r}")
        self.threshold = threshold
        self.action = action
        self.tokens = content_terms

    def score(self, answer: str, contexts: list[str]) -> float:
        if _NOT_IN_DOCS.search(answer):
            return 1.0
        known = set(self.tokens("\n".join(contexts)))
        supports = []
        for sentence in _SENTENCE.split(answer):
            terms = self.tokens(sentence)
            if terms:
                supports.append(sum(term in known for term in terms) / len(terms))
        return sum(supports) / len(supports) if supports else 1.0

    def check(self, text: str, context: GuardContext | None = None) -> GuardResult:
        if context is None or not context.contexts:
            return GuardResult.allow(self.name)
        score = self.score(text, list(context.contexts))
        scores = {"groundedness": score}
        if score >= self.threshold:
            return GuardResult.allow(self.name, scores=scores)
        reason = f"only {score:.0%} of the answer's terms appear in the retrieved context"
        if self.action == "block":
            return GuardResult.block(self.name, "ungrounded", reason, scores=scores)
        return GuardResult.allow(self.name, category="ungrounded", reason=reason, scores=scores)
