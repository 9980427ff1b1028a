"""The `guards` section of Tessera's settings: which layers run, their fail modes, timeouts and thresholds.

It lives with the guards it configures; `pipeline.config.Settings` includes it as `guards`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class SettingsSection(BaseModel):
    """A section of the settings: an unknown key is an error, not a silently ignored typo."""

    model_config = ConfigDict(extra="forbid")


class GuardLayerSettings(SettingsSection):
    """One guard layer: on or off, what happens when it fails ("closed" blocks, "open" lets through), its timeout."""

    enabled: bool = True
    fail: Literal["open", "closed"] = "closed"
    timeout_s: float = Field(default=10.0, gt=0, le=600)


class SizeGuardSettings(GuardLayerSettings):
    max_chars: int = Field(default=4000, ge=1)


class DenyListSettings(GuardLayerSettings):
    """Keywords (matched as words) and regular expressions (Python `re`, case-insensitive) that block a text."""

    keywords: list[str] = []
    patterns: list[str] = []

    @field_validator("patterns")
    @classmethod
    def regular_expressions(cls, patterns: list[str]) -> list[str]:
        # Checked here so every command (ingest too, which builds no guard) refuses a bad pattern at start-up.
        for pattern in patterns:
            if not pattern:
                raise ValueError("an empty pattern matches every text; give a regular expression or remove it")
            try:
                re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
        return patterns


class PIIGuardSettings(GuardLayerSettings):
    action: Literal["redact", "block"] = "redact"
    types: list[Literal["email", "phone", "card", "iban", "national_id", "ip"]] = [
        "email", "phone", "card", "iban", "national_id", "ip"
    ]


class InjectionGuardSettings(GuardLayerSettings):
    # 0.6 was chosen by cross-validation on guardrails/data/injection_examples.jsonl (see the README's figures).
    threshold: float = Field(default=0.6, gt=0, le=1)


class TopicGuardSettings(GuardLayerSettings):
    enabled: bool = False
    threshold: float = Field(default=0.2, ge=-1, le=1)


class LlamaGuardSettings(GuardLayerSettings):
    """Llama Guard 3 through transformers: `model` is a hub name in the local cache, a folder or a .gguf file."""

    enabled: bool = False
    fail: Literal["open", "closed"] = "open"
    model: str | None = None
    threshold: float = Field(default=0.5, gt=0, le=1)
    categories: list[str] | None = None
    timeout_s: float = Field(default=60.0, gt=0, le=600)

    @model_validator(mode="after")
    def model_when_enabled(self) -> "LlamaGuardSettings":
        if self.enabled and not self.model:
            raise ValueError("guards.llama_guard.enabled needs guards.llama_guard.model: a local folder or .gguf file")
        return self


class GroundednessSettings(GuardLayerSettings):
    action: Literal["flag", "block"] = "flag"
    threshold: float = Field(default=0.5, ge=0, le=1)


class GuardSettings(SettingsSection):
    """Input guards run before any retrieval or LM call, context guards on each retrieved passage, output guards
    on the answer."""

    size: SizeGuardSettings = SizeGuardSettings()
    encoding: GuardLayerSettings = GuardLayerSettings()
    deny_list: DenyListSettings = DenyListSettings()
    pii: PIIGuardSettings = PIIGuardSettings()
    injection: InjectionGuardSettings = InjectionGuardSettings()
    topic: TopicGuardSettings = TopicGuardSettings()
    llama_guard: LlamaGuardSettings = LlamaGuardSettings()
    citations: GuardLayerSettings = GuardLayerSettings()
    groundedness: GroundednessSettings = GroundednessSettings()
