"""Input, context and output guards around every answer: rules, PII, prompt injection, Llama Guard, grounding."""

from guardrails.base import GuardContext, GuardResult
from guardrails.chain import ChainResult, GuardChain, Layer
from guardrails.injection import InjectionGuard
from guardrails.llama_guard import HAZARD_CATEGORIES, LlamaGuard
from guardrails.output import CitationGuard, GroundednessGuard
from guardrails.pii import PIIGuard
from guardrails.policy import Guards, build_guards
from guardrails.rules import DenyListGuard, EncodingGuard, SizeGuard, TopicGuard

__all__ = [
    "HAZARD_CATEGORIES",
    "ChainResult",
    "CitationGuard",
    "DenyListGuard",
    "EncodingGuard",
    "GroundednessGuard",
    "GuardChain",
    "GuardContext",
    "GuardResult",
    "Guards",
    "InjectionGuard",
    "Layer",
    "LlamaGuard",
    "PIIGuard",
    "SizeGuard",
    "TopicGuard",
    "build_guards",
]
