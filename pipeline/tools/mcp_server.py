"""The MCP server that ships with Tessera: unit conversion and the demo product's support tickets, over stdio.

    .venv/bin/python -m pipeline.tools.mcp_server [--tickets PATH]

It is what the tests and the agent eval set start as an external tool server; both tools are read-only (and say
so in their MCP annotations). A failure raises `ToolError`, whose message the client passes on to the LM.
"""

from __future__ import annotations

import argparse
import json
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

__all__ = ["convert", "load_tickets", "main", "server"]

# Each unit: (dimension, factor to the dimension's base unit). Temperature is affine and handled apart.
_UNITS: dict[str, tuple[str, float]] = {}
_SPELLINGS: dict[str, list[str]] = {
    # length, base metre
    "mm": ["millimeter", "millimetre"], "cm": ["centimeter", "centimetre"], "m": ["meter", "metre"],
    "km": ["kilometer", "kilometre"], "in": ["inch", "inches"], "ft": ["foot", "feet"], "yd": ["yard"],
    "mi": ["mile"], "nmi": ["nautical mile"],
    # mass, base kilogram
    "mg": ["milligram"], "g": ["gram"], "kg": ["kilogram", "kilo"], "t": ["tonne", "metric ton"],
    "oz": ["ounce"], "lb": ["pound", "lbs"],
    # time, base second
    "ms": ["millisecond"], "s": ["second", "sec", "secs"], "min": ["minute", "mins"], "h": ["hour", "hr", "hrs"],
    "d": ["day"], "wk": ["week"],
    # data, base byte (KB/MB/GB are decimal, KiB/MiB/GiB binary)
    "bit": ["bits"], "B": ["byte"], "KB": ["kilobyte", "kB"], "MB": ["megabyte"], "GB": ["gigabyte"],
    "TB": ["terabyte"], "PB": ["petabyte"], "KiB": ["kibibyte"], "MiB": ["mebibyte"], "GiB": ["gibibyte"],
    "TiB": ["tebibyte"], "PiB": ["pebibyte"],
}
_FACTORS = {
    "length": {"mm": 1e-3, "cm": 1e-2, "m": 1.0, "km": 1e3, "in": 0.0254, "ft": 0.3048, "yd": 0.9144,
               "mi": 1609.344, "nmi": 1852.0},
    "mass": {"mg": 1e-6, "g": 1e-3, "kg": 1.0, "t": 1e3, "oz": 0.028349523125, "lb": 0.45359237},
    "time": {"ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "wk": 604800.0},
    "data": {"bit": 0.125, "B": 1.0, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15,
             "KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30, "TiB": 2.0**40, "PiB": 2.0**50},
}
_TEMPERATURE = {"C": ["celsius", "°c", "degc", "degrees celsius"], "F": ["fahrenheit", "°f", "degf",
                                                                        "degrees fahrenheit"], "K": ["kelvin"]}
_ALIASES: dict[str, str] = {}
for _dimension, _table in _FACTORS.items():
    for _unit, _factor in _table.items():
        _UNITS[_unit] = (_dimension, _factor)
        for _name in [_unit, *_SPELLINGS.get(_unit, [])]:
            _ALIASES[_name.lower()] = _unit
            if not _name.endswith("s") and len(_name) > 3:
                _ALIASES[_name.lower() + "s"] = _unit
for _unit, _names in _TEMPERATURE.items():
    for _name in [_unit, *_names]:
        _ALIASES[_name.lower()] = _unit
    _UNITS[_unit] = ("temperature", 1.0)


def _unit(text: str) -> str:
    key = " ".join(text.strip().split()).lower()
    if key not in _ALIASES:
        known = ", ".join(sorted(_UNITS, key=str.lower))
        raise ToolError(f"unknown unit {text!r}; known units: {known}")
    return _ALIASES[key]


def _to_kelvin(value: float, unit: str) -> float:
    return {"C": value + 273.15, "F": (value - 32) * 5 / 9 + 273.15, "K": value}[unit]


def _from_kelvin(value: float, unit: str) -> float:
    return {"C": value - 273.15, "F": (value - 273.15) * 9 / 5 + 32, "K": value}[unit]


def _format(number: float) -> str:
    if number != 0 and not 1e-6 <= abs(number) < 1e15:
        return f"{number:.6g}"
    return f"{number:.6f}".rstrip("0").rstrip(".")


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert `value` between two units of the same dimension; raise `ToolError` saying what does not fit."""
    source, target = _unit(from_unit), _unit(to_unit)
    (source_dim, source_factor), (target_dim, target_factor) = _UNITS[source], _UNITS[target]
    if source_dim != target_dim:
        raise ToolError(f"cannot convert {source_dim} ({source}) to {target_dim} ({target}); "
                        "both units must measure the same thing")
    if source_dim == "temperature":
        kelvin = _to_kelvin(value, source)
        if kelvin < 0:
            raise ToolError(f"{_format(value)} {source} is below absolute zero")
        return _from_kelvin(kelvin, target)
    return value * source_factor / target_factor


def load_tickets(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """The bundled tickets (eval_sets/tools/tickets.json) or those in `path`, by id."""
    source = path or Path(str(resources.files("eval_sets").joinpath("tools/tickets.json")))
    data = json.loads(source.read_text(encoding="utf-8"))
    product = data.get("product", "")
    return {ticket["id"].upper(): {"product": product, **ticket} for ticket in data["tickets"]}


_TICKET_ID = re.compile(r"^\s*(?:([A-Za-z]+)\s*[-_ ]?\s*)?(\d+)\s*$")
_tickets: dict[str, dict[str, Any]] = {}
_READ_ONLY = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False)

server = MCPServer("tessera-tools", instructions="Unit conversion and Corvid Gateway 4.2 support-ticket status.",
                   log_level="WARNING")


@server.tool(annotations=_READ_ONLY)
def convert_units(
    value: Annotated[float, Field(description="the number to convert, e.g. 1.5")],
    from_unit: Annotated[str, Field(description="unit of the value, e.g. GiB, km, lb, F, h")],
    to_unit: Annotated[str, Field(description="unit wanted, of the same kind, e.g. MB, mi, kg, C, min")],
) -> str:
    """Convert a quantity between units of length, mass, time, data size (MB decimal, MiB binary) or temperature."""
    result = convert(value, from_unit, to_unit)
    return f"{_format(value)} {_unit(from_unit)} = {_format(result)} {_unit(to_unit)}"


@server.tool(annotations=_READ_ONLY)
def ticket_status(
    ticket_id: Annotated[str, Field(description="the ticket id, e.g. CG-1042")],
) -> str:
    """Look up a Corvid Gateway 4.2 support ticket: its status, priority, assignee and summary."""
    match = _TICKET_ID.match(ticket_id)
    if not match or (match.group(1) and match.group(1).upper() != "CG"):
        raise ToolError(f"{ticket_id!r} is not a ticket id; ids look like CG-1042")
    key = f"CG-{match.group(2)}"
    if not _tickets:
        _tickets.update(load_tickets())
    if key not in _tickets:
        raise ToolError(f"no ticket {key}; there are {len(_tickets)} tickets, from {min(_tickets)} to {max(_tickets)}")
    ticket = _tickets[key]
    return (f"{key} ({ticket['product']}): status {ticket['status']}, priority {ticket['priority']}, "
            f"assignee {ticket['assignee']}, opened {ticket['opened']}. Summary: {ticket['summary']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Tessera's bundled MCP server (stdio).")
    parser.add_argument("--tickets", type=Path, help="a tickets JSON file instead of the bundled one")
    args = parser.parse_args(argv)
    _tickets.update(load_tickets(args.tickets))
    server.run()


if __name__ == "__main__":
    main()
