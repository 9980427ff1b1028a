"""What the guardrails raise on purpose. The pipeline's ConfigError is also a GuardConfigError, so one `except` catches
a bad guard setting wherever it was found."""


class GuardrailError(Exception):
    """Base of every error the guardrails raise on purpose; the message says how to fix it."""


class GuardConfigError(GuardrailError):
    """A guard configured with a value it cannot use (a bad threshold, regex, model path, …)."""
