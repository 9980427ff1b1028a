"""The LM factory: any LiteLLM model string through `dspy.LM`, or the embedded model run on the CPU.

A model string is checked before anything loads: the provider must be one LiteLLM knows, its credentials must be
in the environment, and a local Ollama must answer.
"""

from __future__ import annotations

import http.client
import os
import urllib.request

import dspy

from pipeline.errors import ConfigError, LMError
from pipeline.lm.embedded import TransformersEngine
from pipeline.lm.models import default_embedded_lm, embedded_model, part_paths

OLLAMA_PROVIDERS = ("ollama", "ollama_chat")
DEFAULT_OLLAMA_BASE = "http://localhost:11434"
OLLAMA_TIMEOUT_S = 2.0


def is_embedded(model: str) -> bool:
    return model.startswith("local/")


def lm_provider(model: str) -> str:
    """The provider a model string names (`local` for the embedded model); ConfigError when there is none."""
    if is_embedded(model):
        embedded_model(model)
        return "local"
    provider, _, name = model.partition("/")
    if not provider or not name:
        raise ConfigError(
            f"LM {model!r} is not a LiteLLM model string. Use 'provider/model' "
            f"(for example 'openai/gpt-4.1-mini') or {default_embedded_lm()!r} for the embedded model."
        )
    litellm = _litellm()
    try:
        _, provider, _, _ = litellm.get_llm_provider(model)
    except litellm.exceptions.BadRequestError:
        raise ConfigError(
            f"LM {model!r}: LiteLLM knows no provider {provider!r}. Use 'provider/model' with a provider from "
            f"https://docs.litellm.ai/docs/providers (for example 'openai/gpt-4.1-mini' or 'ollama_chat/llama3.2'), "
            f"or {default_embedded_lm()!r} for the embedded model."
        ) from None
    return provider


def check_lm_environment(model: str) -> None:
    """Fail at start-up, not at the first question, when the provider's variables are missing or Ollama is down."""
    provider = lm_provider(model)
    if provider == "local":
        part_paths(embedded_model(model))  # a missing wheel fails here with its pip command
        return
    if provider in OLLAMA_PROVIDERS:
        # LiteLLM lists OLLAMA_API_BASE as required, but falls back to the local default itself.
        _check_ollama(model, os.environ.get("OLLAMA_API_BASE") or DEFAULT_OLLAMA_BASE)
        return
    missing = _litellm().validate_environment(model)["missing_keys"]
    if missing:
        raise ConfigError(
            f"LM {model!r} needs {', '.join(missing)} in the environment (as LiteLLM reports for provider "
            f"{provider!r}). Set it, for example `export {missing[0]}=...`, or use {default_embedded_lm()!r}, which runs offline."
        )


def _check_ollama(model: str, api_base: str) -> None:
    url = api_base.rstrip("/") + "/api/version"
    try:
        with urllib.request.urlopen(url, timeout=OLLAMA_TIMEOUT_S):
            return
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise LMError(
            f"LM {model!r} needs an Ollama server at {api_base}, which did not answer {url} ({reason}). "
            f"Start it with `ollama serve` (and `ollama pull {model.partition('/')[2]}`), "
            "or set OLLAMA_API_BASE to the URL where it runs."
        ) from None


def _litellm():
    import litellm

    # DSPy sets the same on its first LiteLLM call; without it an unknown provider prints a banner to stdout.
    litellm.suppress_debug_info = True
    return litellm


def make_lm(
    model: str, *, temperature: float = 0.0, max_tokens: int = 256, cache: bool = True, dtype: str = "auto"
) -> dspy.BaseLM:
    """Return a DSPy LM for a model string, after `check_lm_environment`.

    `local/...` names an embedded model of `pipeline.lm.models.MODELS` (`local/smollm2`, `local/qwen2.5-coder-0.5b`,
    ...), run on the CPU in `dtype` (`auto`: bfloat16 where the CPU has it natively); anything else is a LiteLLM
    model string (`openai/gpt-4.1-mini`, `anthropic/...`, `ollama_chat/llama3.2`, ...). DSPy's on-disk cache
    stays on. Nothing loads here: an embedded model loads on its first call.

    DSPy keys its cache on the request, not on the engine, so an embedded LM's requests carry the dtype it runs
    in (as request metadata, which the engine ignores): a float32 answer is never replayed to a bfloat16 run.
    """
    check_lm_environment(model)
    if is_embedded(model):
        engine = TransformersEngine(model, dtype=dtype)
        return dspy.LM(model, engine=engine, temperature=temperature, max_tokens=max_tokens, cache=cache,
                       metadata={"tessera_dtype": engine.run_dtype})
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
