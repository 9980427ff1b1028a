"""What the agent may call: typed tools (base), the registry with the deployment allow-list, the calculator, document
search over GuardedRetrieval, SQL functions declared in a data file, and the tool settings."""

from pipeline.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "Parameter": "pipeline.tools.base",
        "Tool": "pipeline.tools.base",
        "ToolArgumentError": "pipeline.tools.base",
        "ToolError": "pipeline.tools.base",
        "ToolResult": "pipeline.tools.base",
        "tool": "pipeline.tools.base",
        "ToolRegistry": "pipeline.tools.registry",
        "calculator": "pipeline.tools.calculator",
    },
)
