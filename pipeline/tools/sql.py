"""SQL function tools: each declared query (pipeline.tools.sql_functions) becomes a typed Tool over a read-only database.

SQLite (the bundled catalog, or any file) opens read-only (`mode=ro`, `query_only`) under an authorizer that allows
only SELECT, reads of the function's declared tables and a short list of harmless built-in functions; every
function is prepared under that authorizer at start-up, so one reading an undeclared table fails before the first
question. Other databases go through a SQLAlchemy URL: `text()` with bound parameters in a read-only transaction
that is always rolled back. Parameters are bound, never pasted into the SQL.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from pipeline.errors import ConfigError
from pipeline.tools.base import DEFAULT_TIMEOUT_S, Tool, ToolError, ToolResult
from pipeline.tools.calculator import format_number
from pipeline.tools.sql_functions import SqlFunction, load_functions

log = logging.getLogger(__name__)

MAX_ROWS = 50
_SAFE_FUNCTIONS = frozenset({
    "abs", "avg", "coalesce", "count", "date", "datetime", "glob", "group_concat", "ifnull", "iif", "instr",
    "julianday", "length", "like", "lower", "ltrim", "max", "min", "nullif", "printf", "format", "replace", "round",
    "rtrim", "strftime", "substr", "substring", "sum", "time", "total", "trim", "typeof", "upper",
})


class Catalog(Protocol):
    """A database the SQL functions read."""

    def table_names(self) -> set[str]: ...

    def check(self, function: SqlFunction) -> None: ...

    def query(self, function: SqlFunction, values: dict[str, Any], timeout_s: float) -> tuple[list[str], list[tuple]]: ...


class SqliteCatalog:
    """A SQLite file opened read-only for each call, under an authorizer limited to the function's tables."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"tools.sql.database: no SQLite file at {str(self.path)!r}; build it (for the bundled "
                              "catalog: python eval_sets/tools/build_catalog.py) or point the setting at one")
        self.uri = self.path.resolve().as_uri() + "?mode=ro"

    def _connect(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(self.uri, uri=True, check_same_thread=False)
            connection.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open {str(self.path)!r} as a SQLite database: {exc}") from None
        return connection

    def table_names(self) -> set[str]:
        connection = self._connect()
        try:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')").fetchall()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{str(self.path)!r} is not a readable SQLite database: {exc}") from None
        finally:
            connection.close()
        return {name.lower() for (name,) in rows}

    def check(self, function: SqlFunction) -> None:
        """Prepare the query under its authorizer without running it: an undeclared table, a write or an unknown
        column is a ConfigError now rather than a failed call later."""
        connection = self._connect()
        connection.set_authorizer(_authorizer(function.tables))
        try:
            connection.execute("EXPLAIN " + function.sql, {p.name: None for p in function.parameters})
        except sqlite3.DatabaseError as exc:
            hint = (f"declare every table it reads in 'tables' (now {list(function.tables)}) and only SELECT"
                    if _refused(exc) else "fix the sql")
            raise ConfigError(f"SQL function {function.name!r} cannot run on {self.path.name}: {exc}; {hint}") from None
        finally:
            connection.close()

    def query(self, function: SqlFunction, values: dict[str, Any], timeout_s: float) -> tuple[list[str], list[tuple]]:
        connection = self._connect()
        connection.set_authorizer(_authorizer(function.tables))
        deadline = time.monotonic() + timeout_s
        connection.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)  # a runaway query stops
        try:
            cursor = connection.execute(function.sql, values)
            rows = cursor.fetchmany(MAX_ROWS + 1)
            return [column[0] for column in cursor.description or ()], rows
        except sqlite3.DatabaseError as exc:
            if "interrupted" in str(exc):
                raise ToolError(f"{function.name} took longer than {timeout_s:g} s") from None
            if _refused(exc):
                raise ToolError(f"{function.name} was refused: it may only SELECT from {', '.join(function.tables)}") from None
            raise ToolError(f"{function.name} failed: {exc}") from None
        finally:
            connection.close()


def _refused(exc: sqlite3.Error) -> bool:
    """The authorizer said no: SQLite reports a denied read as "access to t.c is prohibited", others as "not
    authorized"."""
    return "not authorized" in str(exc) or "prohibited" in str(exc)


def _authorizer(tables: Iterable[str]):
    allowed = frozenset(t.lower() for t in tables)

    def authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
        if action == sqlite3.SQLITE_SELECT:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ:
            return sqlite3.SQLITE_OK if (arg1 or "").lower() in allowed else sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION:
            return sqlite3.SQLITE_OK if (arg2 or "").lower() in _SAFE_FUNCTIONS else sqlite3.SQLITE_DENY
        if action == getattr(sqlite3, "SQLITE_RECURSIVE", 33):
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    return authorize


class SqlAlchemyCatalog:
    """Any database SQLAlchemy reaches: `text()` with bound parameters in a read-only transaction, rolled back."""

    def __init__(self, url: str) -> None:
        import sqlalchemy
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            self.engine = sqlalchemy.create_engine(url)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise ConfigError(f"tools.sql.database: {url!r} is not a usable SQLAlchemy URL ({exc}); write e.g. "
                              "'postgresql+psycopg://reader@host/catalog' and install its driver") from None
        self._sqlalchemy = sqlalchemy

    def table_names(self) -> set[str]:
        try:
            inspector = self._sqlalchemy.inspect(self.engine)
            return {name.lower() for name in [*inspector.get_table_names(), *inspector.get_view_names()]}
        except self._sqlalchemy.exc.SQLAlchemyError as exc:
            raise ConfigError(f"tools.sql.database: cannot connect to {self.engine.url!r}: {exc}") from None

    def check(self, function: SqlFunction) -> None:
        """Static checks only: the tables exist (checked by the caller) and the statement is one SELECT (at load)."""

    def query(self, function: SqlFunction, values: dict[str, Any], timeout_s: float) -> tuple[list[str], list[tuple]]:
        sqlalchemy = self._sqlalchemy
        try:
            with self.engine.connect() as connection:
                if self.engine.dialect.name in ("postgresql", "mysql", "mariadb", "oracle"):
                    connection.exec_driver_sql("SET TRANSACTION READ ONLY")
                try:
                    result = connection.execute(sqlalchemy.text(function.sql), values)
                    rows = [tuple(row) for row in result.fetchmany(MAX_ROWS + 1)]
                    return list(result.keys()), rows
                finally:
                    connection.rollback()
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise ToolError(f"{function.name} failed: {type(exc).__name__}: {getattr(exc, 'orig', exc)}") from None


def open_catalog(database: str | Path) -> Catalog:
    """A SQLite path or `sqlite:///path` URL opens natively (with the authorizer); any other URL via SQLAlchemy."""
    text = str(database)
    if text.startswith("sqlite:///"):
        return SqliteCatalog(text.removeprefix("sqlite:///"))
    if "://" in text:
        return SqlAlchemyCatalog(text)
    return SqliteCatalog(text)


def sql_tools(database: str | Path, functions: str | Path | Sequence[SqlFunction], *,
              timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Tool]:
    """One Tool per declared function, each checked against the database now (tables exist, query prepares)."""
    catalog = open_catalog(database)
    declared = load_functions(Path(functions)) if isinstance(functions, (str, Path)) else list(functions)
    existing = catalog.table_names()
    tools = []
    for function in declared:
        unknown = sorted(set(function.tables) - existing)
        if unknown:
            raise ConfigError(f"SQL function {function.name!r} reads unknown table(s) {unknown}; the database has "
                              f"{sorted(existing)}")
        catalog.check(function)
        tools.append(sql_function_tool(function, catalog, timeout_s=timeout_s))
    return tools


def sql_function_tool(function: SqlFunction, catalog: Catalog, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Tool:
    """The Tool that runs `function` on `catalog` with its arguments bound."""

    def run(**values: Any) -> ToolResult:
        columns, rows = catalog.query(function, values, timeout_s)
        if not rows:
            return ToolResult(function.empty_message(values), data=[])
        records = [dict(zip(columns, (_plain(v) for v in row))) for row in rows[:MAX_ROWS]]
        lines = ["; ".join(f"{key}: {_shown(value)}" for key, value in record.items()) for record in records]
        if len(rows) > MAX_ROWS:
            lines.append(f"(more than {MAX_ROWS} rows; only the first {MAX_ROWS} are shown)")
        return ToolResult("\n".join(lines), data=records)

    return Tool(function.name, function.description, function.parameters, run, side_effects=False, timeout_s=timeout_s)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return format_number(value)
    return str(value)
