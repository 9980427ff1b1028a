"""Build the input, context and output guard chains from the `guards` section of the settings."""

from __future__ import annotations

from dataclasses import dataclass

from guardrails.base import TextEncoder
from guardrails.chain import GuardChain, Layer
from guardrails.injection import InjectionGuard
from guardrails.llama_guard import GgufLoader, LlamaGuard
from guardrails.output import CitationGuard, GroundednessGuard
from guardrails.pii import PIIGuard
from guardrails.rules import DenyListGuard, EncodingGuard, SizeGuard, TopicGuard
from guardrails.settings import GuardLayerSettings, GuardSettings


@dataclass(frozen=True)
class Guards:
    """The three chains around a request: before retrieval, on each retrieved passage, on the answer."""

    input: GuardChain
    context: GuardChain
    output: GuardChain


def _layer(guard, settings: GuardLayerSettings) -> Layer:
    return Layer(guard, fail=settings.fail, timeout_s=settings.timeout_s)


def build_guards(
    settings: GuardSettings,
    embedder: TextEncoder | None = None,
    topic_texts: list[str] | None = None,
    load_gguf: GgufLoader | None = None,
) -> Guards:
    """Chains for every enabled layer. `embedder` powers the learned injection layer and the topic guard;
    `topic_texts` (a sample of indexed chunks) define what is on-topic; `load_gguf` loads a Llama Guard .gguf file."""
    inputs: list[Layer] = []
    contexts: list[Layer] = []
    outputs: list[Layer] = []

    if settings.size.enabled:
        inputs.append(_layer(SizeGuard(max_chars=settings.size.max_chars), settings.size))
    if settings.encoding.enabled:
        inputs.append(_layer(EncodingGuard(), settings.encoding))
    if settings.deny_list.enabled and (settings.deny_list.keywords or settings.deny_list.patterns):
        deny = DenyListGuard(keywords=settings.deny_list.keywords, patterns=settings.deny_list.patterns)
        inputs.append(_layer(deny, settings.deny_list))
        outputs.append(_layer(deny, settings.deny_list))
    if settings.injection.enabled:
        injection = InjectionGuard(embedder=embedder, threshold=settings.injection.threshold).prepare()
        inputs.append(_layer(injection, settings.injection))
        # The same detector on retrieved passages catches indirect injection planted in documents.
        contexts.append(_layer(injection, settings.injection))
    if settings.topic.enabled and embedder is not None and topic_texts:
        topic = TopicGuard(embedder, centroid_texts=topic_texts, threshold=settings.topic.threshold)
        inputs.append(_layer(topic, settings.topic))
    if settings.pii.enabled:
        pii = PIIGuard(types=settings.pii.types, action=settings.pii.action)
        inputs.append(_layer(pii, settings.pii))
        contexts.append(_layer(PIIGuard(types=settings.pii.types, action="redact"), settings.pii))
        outputs.append(_layer(pii, settings.pii))
    if settings.llama_guard.enabled:
        llama = LlamaGuard(
            settings.llama_guard.model,
            categories=settings.llama_guard.categories,
            threshold=settings.llama_guard.threshold,
            load_gguf=load_gguf,
        )
        inputs.append(_layer(llama, settings.llama_guard))
        outputs.append(_layer(llama, settings.llama_guard))
    if settings.citations.enabled:
        outputs.append(_layer(CitationGuard(), settings.citations))
    if settings.groundedness.enabled:
        grounded = GroundednessGuard(threshold=settings.groundedness.threshold, action=settings.groundedness.action)
        outputs.append(_layer(grounded, settings.groundedness))
    return Guards(GuardChain("input", inputs), GuardChain("context", contexts), GuardChain("output", outputs))
