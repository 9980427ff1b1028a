"""The SQL functions file: named, parameterised, read-only SELECT queries declared in YAML, checked when loaded.

A function names the tables it reads, types and describes each parameter, and writes its parameters as `:name`
binds. Loading refuses what could not run safely or could surprise a user later: a statement that is not one
SELECT, a bind without a declared parameter (or a parameter the SQL never uses), a bad type, a missing field.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ConfigError
from pipeline.tools.base import Parameter

_TYPES = {"string": str, "integer": int, "number": float, "boolean": bool}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BIND = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_WRITES = re.compile(
    r"\b(insert|update|delete|merge|upsert|drop|alter|create|truncate|attach|detach|pragma|vacuum|reindex|grant|"
    r"revoke|into)\b",
    re.IGNORECASE,
)
_FIELDS = {"name", "description", "parameters", "tables", "sql", "empty"}


@dataclass(frozen=True)
class SqlFunction:
    """One declared query: what the LM reads (name, description, typed parameters) and what runs (sql, tables)."""

    name: str
    description: str
    parameters: tuple[Parameter, ...]
    sql: str
    tables: tuple[str, ...]
    empty: str | None = None

    def empty_message(self, values: dict[str, Any]) -> str:
        if self.empty is None:
            return f"{self.name}: no rows match " + ", ".join(f"{k}={v!r}" for k, v in values.items())
        return self.empty.format_map(values)


def load_functions(path: Path) -> list[SqlFunction]:
    """Every function declared in the YAML file at `path`; a ConfigError naming the function and the fix otherwise."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the SQL functions file {str(path)!r}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"the SQL functions file {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("functions"), list):
        raise ConfigError(f"{str(path)!r}: write the SQL functions as a list under a top-level 'functions:' key")
    functions, seen = [], set()
    for index, entry in enumerate(data["functions"]):
        function = parse_function(entry, where=f"{path.name}, function {index + 1}")
        if function.name in seen:
            raise ConfigError(f"{path.name}: two SQL functions are named {function.name!r}; rename one")
        seen.add(function.name)
        functions.append(function)
    return functions


def parse_function(entry: Any, *, where: str = "SQL function") -> SqlFunction:
    """One function from its YAML mapping, checked."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with {sorted(_FIELDS - {'empty'})}")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}: 'name' must be lower_snake_case letters and digits (at most 64), got {name!r}")
    where = f"SQL function {name!r}"
    unknown = set(entry) - _FIELDS
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; the fields are {sorted(_FIELDS)}")
    description = entry.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ConfigError(f"{where}: give a 'description' that tells the LM what the function answers")
    tables = entry.get("tables")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, str) and _IDENTIFIER.match(t) for t in tables):
        raise ConfigError(f"{where}: 'tables' must list every table the query reads, e.g. tables: [plans]")
    sql = entry.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise ConfigError(f"{where}: 'sql' is missing; write one SELECT statement with :name binds")
    parameters = _parameters(entry.get("parameters") or {}, where)
    check_select(sql, [p.name for p in parameters], where)
    empty = entry.get("empty")
    if empty is not None:
        if not isinstance(empty, str):
            raise ConfigError(f"{where}: 'empty' must be text")
        fields = {field for _, field, _, _ in string.Formatter().parse(empty) if field}
        undeclared = fields - {p.name for p in parameters}
        if undeclared:
            raise ConfigError(f"{where}: 'empty' names {sorted(undeclared)}, which are not parameters")
    return SqlFunction(name, " ".join(description.split()), parameters, sql.strip().rstrip(";").strip(),
                       tuple(t.lower() for t in tables), empty)


def _parameters(spec: Any, where: str) -> tuple[Parameter, ...]:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: 'parameters' maps each name to {{type, description}}, e.g. plan: {{type: string, "
                          "description: the plan name}}")
    parameters = []
    for pname, body in spec.items():
        if not isinstance(pname, str) or not _IDENTIFIER.match(pname):
            raise ConfigError(f"{where}: parameter name {pname!r} must be letters, digits and underscores")
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: parameter {pname!r} needs type and description")
        extra = set(body) - {"type", "description", "default"}
        if extra:
            raise ConfigError(f"{where}: parameter {pname!r} has unknown field(s) {sorted(extra)}")
        ptype = _TYPES.get(body.get("type"))
        if ptype is None:
            raise ConfigError(f"{where}: parameter {pname!r} has type {body.get('type')!r}; use one of {sorted(_TYPES)}")
        described = body.get("description")
        if not isinstance(described, str) or not described.strip():
            raise ConfigError(f"{where}: parameter {pname!r} needs a description (the LM reads it)")
        required = "default" not in body
        parameters.append(Parameter(pname, ptype, described.strip(), required, body.get("default")))
    return tuple(parameters)


def check_select(sql: str, declared: list[str], where: str) -> None:
    """Refuse anything but one SELECT (or WITH … SELECT) whose binds are exactly the declared parameters."""
    bare = _code_only(sql)
    statement = bare.strip().rstrip(";").strip()
    if ";" in statement:
        raise ConfigError(f"{where}: the sql holds more than one statement; a function is one SELECT")
    first = statement.split(None, 1)[0].lower() if statement else ""
    if first not in ("select", "with"):
        raise ConfigError(f"{where}: the sql starts with {first.upper() or 'nothing'!r}; a function is one read-only "
                          "SELECT (write changes outside Tessera)")
    write = _WRITES.search(statement)
    if write:
        raise ConfigError(f"{where}: the sql contains {write.group(1).upper()}; a function may only read (one SELECT)")
    binds = set(_BIND.findall(statement))
    missing = sorted(binds - set(declared))
    if missing:
        raise ConfigError(f"{where}: the sql uses :{', :'.join(missing)} but 'parameters' does not declare "
                          f"{'it' if len(missing) == 1 else 'them'}; add a type and description for each")
    unused = sorted(set(declared) - binds)
    if unused:
        raise ConfigError(f"{where}: parameter(s) {unused} are declared but the sql never uses them; write each as "
                          ":name in the sql or remove it")


def _code_only(sql: str) -> str:
    """The SQL with comments and string literals blanked, so neither hides nor fakes a keyword or a bind."""
    out, i, n = [], 0, len(sql)
    while i < n:
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            out.append(" ")
        elif sql[i] == "'":
            i += 1
            while i < n:
                if sql[i] == "'" and sql.startswith("''", i):
                    i += 2
                elif sql[i] == "'":
                    i += 1
                    break
                else:
                    i += 1
            out.append("''")
        else:
            out.append(sql[i])
            i += 1
    return "".join(out)
