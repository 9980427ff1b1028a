"""Serving: the compiled program as one MLflow pyfunc model (`pipeline/serving/model.py`, logged as code), and the
HTTP front doors in front of it (OpenAI-compatible /v1, MLflow's /invocations, API keys, limits, usage)."""

from pipeline.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "load_verified_model": "pipeline.serving.registry",
        "ServingSettings": "pipeline.serving.settings",
        "ServedModel": "pipeline.serving.served",
        "create_app": "pipeline.serving.http",
        "run_server": "pipeline.serving.server",
        "KeyRing": "pipeline.serving.keys",
        "RateLimiter": "pipeline.serving.keys",
        "UsageLog": "pipeline.serving.keys",
        "add_key": "pipeline.serving.keys",
        "revoke_key": "pipeline.serving.keys",
    },
)
