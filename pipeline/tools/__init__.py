"""What the agent may call: typed tools (base), the registry with the deployment allow-list, the calculator, document
search over GuardedRetrieval, SQL functions declared in a data file, MCP servers' tools, and the tool settings."""

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
        "evaluate": "pipeline.tools.calculator",
        "document_search_tool": "pipeline.tools.documents",
        "SqlFunction": "pipeline.tools.sql_functions",
        "load_functions": "pipeline.tools.sql_functions",
        "SqlAlchemyCatalog": "pipeline.tools.sql",
        "SqliteCatalog": "pipeline.tools.sql",
        "open_catalog": "pipeline.tools.sql",
        "sql_tools": "pipeline.tools.sql",
        "McpServerTools": "pipeline.tools.mcp_client",
        "mcp_tools": "pipeline.tools.mcp_client",
        "McpServerSettings": "pipeline.tools.settings",
        "SqlSettings": "pipeline.tools.settings",
        "ToolSettings": "pipeline.tools.settings",
    },
)
