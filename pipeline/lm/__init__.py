"""Language models: the factory for any LiteLLM model string, the embedded CPU engine, the plain adapter small
models need, and scripted LMs for tests and benchmarks."""

from pipeline.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "LocalModel": "pipeline.lm.embedded",
        "TransformersEngine": "pipeline.lm.embedded",
        "load_local_model": "pipeline.lm.embedded",
        "check_lm": "pipeline.lm.factory",
        "make_lm": "pipeline.lm.factory",
        "PlainAdapter": "pipeline.lm.plain_adapter",
        "adapter_for": "pipeline.lm.plain_adapter",
        "FieldLM": "pipeline.lm.scripted",
    },
)
