"""The `tools:` section of the settings: the allow-list, the SQL functions and their database, MCP servers, and the
agent's step budget and per-tool timeout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from guardrails.settings import SettingsSection


def bundled_tool_file(name: str) -> Path:
    """A file shipped in eval_sets/tools/ (the demo catalog database and its SQL functions)."""
    return Path(str(resources.files("eval_sets").joinpath("tools", name)))


BUNDLED_DATABASE = bundled_tool_file("catalog.sqlite")
BUNDLED_FUNCTIONS = bundled_tool_file("functions.yaml")


class SqlSettings(SettingsSection):
    """SQL function tools: read-only queries declared in `functions` (YAML) over `database`, a SQLite file path or
    any SQLAlchemy URL (`postgresql://reader@db/catalog`)."""

    enabled: bool = True
    database: str = Field(default=str(BUNDLED_DATABASE), min_length=1)
    functions: Path = BUNDLED_FUNCTIONS

    @model_validator(mode="after")
    def files_exist(self) -> SqlSettings:
        if not self.enabled:
            return self
        if not self.functions.is_file():
            raise ValueError(f"tools.sql.functions: {str(self.functions)!r} is not a file; point it at a functions "
                             "YAML file or set tools.sql.enabled: false")
        if "://" not in self.database and not Path(self.database).is_file():
            raise ValueError(f"tools.sql.database: {self.database!r} is neither a SQLite file nor a SQLAlchemy URL "
                             "(e.g. 'sqlite:///catalog.sqlite', 'postgresql://reader@host/db')")
        return self


class McpServerSettings(SettingsSection):
    """One MCP server started over stdio: `command` with `args` and extra `env`; `allowed_tools` limits which of its
    tools join the registry (None: all of them); `timeout_s` bounds each call."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    allowed_tools: list[str] | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=600)


class ToolSettings(SettingsSection):
    """Which tools the agent may use and how long it may go on.

    `allow=None` allows every tool without side effects; a list allows exactly the tools it names (side-effecting
    ones included), and a name no tool has is a start-up error."""

    allow: list[str] | None = None
    sql: SqlSettings = SqlSettings()
    mcp_servers: list[McpServerSettings] = Field(default_factory=list)
    max_steps: int = Field(default=6, ge=1, le=50)
    timeout_s: float = Field(default=30.0, gt=0, le=600)

    @field_validator("mcp_servers")
    @classmethod
    def unique_server_names(cls, servers: list[McpServerSettings]) -> list[McpServerSettings]:
        names = [server.name for server in servers]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"tools.mcp_servers: the name(s) {repeated} are used twice; give each server its own name")
        return servers
