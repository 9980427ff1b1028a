"""Context-guard verdicts stored with each chunk: judged once at ingest, looked up at query time.

The context chain splits in two (`GuardChain.split_fingerprinted`): the leading layers whose verdict depends only
on the text and their fingerprinted configuration (the injection guard and PII redaction in the default chain),
and any after them. Ingest stores the first part's outcome in the payload field `context_verdict` with the
fingerprint it was made under, and the redacted text where a layer rewrote it; a query uses a stored outcome only
when its fingerprint is the current one, and runs the whole chain live on any chunk whose verdict is missing,
stale, or was never checked (a guard timed out or failed at ingest: such verdicts are not stored).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from guardrails.base import GuardResult
from guardrails.chain import ChainResult, GuardChain
from pipeline.store.base import VectorStore

log = logging.getLogger(__name__)

VERDICT_FIELD = "context_verdict"
"""Payload field: {"fingerprint": str, "results": [{"guard", "allowed", "category", "reason", "scores"}, ...]}, plus
"text" (the chunk text as the stored layers left it) where one of them rewrote it (PII redacted)."""

StoredVerdict = dict[str, Any]

JUDGE_BATCH = 128
"""Texts per chain call at ingest, each given the layer's whole timeout. The injection guard embeds every sentence
window of a call's texts in one encode, sorted by length: on the demo corpus (610 chunks, 3,552 windows) batches of
16 took 122 s and batches of 128 took 44 s, the padding of small mixed batches being the difference. A batch that
outlasts its time is retried text by text under one shared deadline."""


class ContextVerdicts:
    """Judges chunk texts for storage and reads stored verdicts back, for one context chain."""

    def __init__(self, chain: GuardChain) -> None:
        self.chain = chain
        self.stored, self.live = chain.split_fingerprinted()
        self.fingerprint = self.stored.fingerprint if self.stored else None
        # At ingest nobody waits on an answer, so every text of a batch gets the layer's whole timeout (the request
        # path gives a batch one). With one timeout per batch a loaded machine left whole ingest batches unchecked,
        # and those passages then failed closed at query time.
        self._judging = GuardChain(self.stored.stage, [
            dataclasses.replace(layer, timeout_s=layer.timeout_s * JUDGE_BATCH) for layer in self.stored.layers
        ])

    def __bool__(self) -> bool:
        return self.fingerprint is not None

    def judge(self, texts: Sequence[str]) -> list[StoredVerdict | None]:
        """The payload value to store with each text; None for a text some guard could not check, which is then
        judged live at query time."""
        if not self or not texts:
            return [None] * len(texts)
        verdicts: list[StoredVerdict | None] = []
        outcomes = [o for start in range(0, len(texts), JUDGE_BATCH)
                    for o in self._judging.run_many(list(texts[start : start + JUDGE_BATCH]))]
        for text, outcome in zip(texts, outcomes):
            if outcome.unchecked:
                verdicts.append(None)
                continue
            verdict = {"fingerprint": self.fingerprint, "results": [_encode(r) for r in outcome.results]}
            if outcome.text != text:
                verdict["text"] = outcome.text
            verdicts.append(verdict)
        return verdicts

    def read(self, value: object, text: str) -> ChainResult | None:
        """The stored layers' outcome for the chunk whose text is `text`, if `value` holds one made under the current
        fingerprint: allowed or not, the text to hand on (redacted where it was), every layer's verdict."""
        if not self or not isinstance(value, Mapping) or value.get("fingerprint") != self.fingerprint:
            return None
        try:
            results = [_decode(result) for result in value["results"]]
            handed_on = value.get("text", text)
            if not isinstance(handed_on, str):
                raise ValueError("text must be a string")
        except (KeyError, TypeError, ValueError):
            return None  # written by something else: judged live
        return ChainResult(all(result.allowed for result in results), handed_on, results)


def _encode(result: GuardResult) -> dict[str, Any]:
    return {"guard": result.guard, "allowed": result.allowed, "category": result.category, "reason": result.reason,
            "scores": {name: float(score) for name, score in result.scores.items()}}


def _decode(row: Mapping[str, Any]) -> GuardResult:
    allowed = row["allowed"]
    if not isinstance(allowed, bool):
        raise ValueError("allowed must be a bool")
    return GuardResult(allowed, str(row["guard"]), row.get("category"), str(row.get("reason", "")),
                       {str(k): float(v) for k, v in dict(row.get("scores") or {}).items()})


class VerdictLookup:
    """Stored verdicts of one collection by chunk id, read in one scan and read again when a chunk it has not seen
    turns up (the collection was re-ingested since).

    The store's search returns chunks without their extra payload fields, so the verdicts are kept here; an id it
    holds no verdict for is judged live.
    """

    def __init__(self, store: VectorStore, collection: str) -> None:
        self.store = store
        self.collection = collection
        self._verdicts: dict[str, object] = {}
        self.scans = 0

    def get(self, ids: Iterable[str]) -> dict[str, object]:
        wanted = list(ids)
        if any(point_id not in self._verdicts for point_id in wanted):
            self._verdicts = {point_id: payload.get(VERDICT_FIELD)
                              for point_id, payload in self.store.scan(self.collection, [VERDICT_FIELD])}
            self.scans += 1
            # An id the scan did not find (deleted meanwhile) is judged live, without a scan per question.
            self._verdicts.update((point_id, None) for point_id in wanted if point_id not in self._verdicts)
        return {point_id: self._verdicts.get(point_id) for point_id in wanted}
