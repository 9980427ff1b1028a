"""The LM factory: any LiteLLM model string through `dspy.LM`, or the embedded model run on the CPU."""

from __future__ import annotations

import dspy

from pipeline.errors import ConfigError, LMError
from pipeline.lm.embedded import EMBEDDED_LM, TransformersEngine, smollm2_gguf_path


def is_embedded(model: str) -> bool:
    return model.startswith("local/")


def make_lm(model: str, *, temperature: float = 0.0, max_tokens: int = 256, cache: bool = True) -> dspy.BaseLM:
    """Return a DSPy LM for a model string.

    `local/smollm2` runs the embedded SmolLM2-135M-Instruct; anything else is a LiteLLM model string
    (`openai/gpt-4.1-mini`, `anthropic/...`, `ollama_chat/llama3.2`, ...). DSPy's on-disk cache stays on.
    """
    if is_embedded(model):
        if model != EMBEDDED_LM:
            raise ConfigError(f"Unknown embedded LM {model!r}. The embedded LM is {EMBEDDED_LM!r}.")
        engine = TransformersEngine(str(smollm2_gguf_path()), model_name=model)
        return dspy.LM(model, engine=engine, temperature=temperature, max_tokens=max_tokens, cache=cache)
    provider, _, name = model.partition("/")
    if not provider or not name:
        raise ConfigError(
            f"LM {model!r} is not a LiteLLM model string. Use 'provider/model' "
            f"(for example 'openai/gpt-4.1-mini') or {EMBEDDED_LM!r} for the embedded model."
        )
    return dspy.LM(model, temperature=temperature, max_tokens=max_tokens, cache=cache)


def check_lm(lm: dspy.BaseLM, role: str = "task") -> None:
    """One short call, so an unreachable LM or a missing key fails before any real work starts."""
    try:
        lm(messages=[{"role": "user", "content": "Reply with the word OK."}], max_tokens=4)
    except Exception as exc:  # noqa: BLE001 - every provider failure gets the same actionable message
        raise LMError(
            f"The {role} LM {lm.model!r} did not answer a test call ({type(exc).__name__}: {str(exc)[:300]}). "
            "Check the model string, its API key variable (for example OPENAI_API_KEY) and the network."
        ) from exc
