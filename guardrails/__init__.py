"""Input, context and output guards around every answer: rules, PII, prompt injection, Llama Guard, grounding.

Names are imported on first use, so `import guardrails.errors` (which `pipeline.errors` does) stays cheap.
"""

import importlib

_EXPORTS = {
    "GuardContext": "guardrails.base",
    "GuardResult": "guardrails.base",
    "ChainResult": "guardrails.chain",
    "GuardChain": "guardrails.chain",
    "Layer": "guardrails.chain",
    "GuardConfigError": "guardrails.errors",
    "GuardrailError": "guardrails.errors",
    "InjectionGuard": "guardrails.injection",
    "HAZARD_CATEGORIES": "guardrails.llama_guard",
    "LlamaGuard": "guardrails.llama_guard",
    "CitationGuard": "guardrails.output",
    "GroundednessGuard": "guardrails.output",
    "PIIGuard": "guardrails.pii",
    "Guards": "guardrails.policy",
    "build_guards": "guardrails.policy",
    "DenyListGuard": "guardrails.rules",
    "EncodingGuard": "guardrails.rules",
    "SizeGuard": "guardrails.rules",
    "TopicGuard": "guardrails.rules",
    "GuardSettings": "guardrails.settings",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'guardrails' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
