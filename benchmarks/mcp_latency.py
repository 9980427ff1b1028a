"""MCP call latency: `convert_units` through the bundled MCP server (stdio subprocess, the agent's sync bridge and
`Tool.run`) against the same conversion in-process, alternating call by call in one run.

Two in-process baselines: the bare Python function, and the function wrapped as a `Tool` (argument binding and the
worker thread with its timeout, which every agent tool call pays). The ratio to the second isolates what MCP adds:
JSON-RPC over pipes, the server's validation and the event-loop hop.

    .venv/bin/python benchmarks/mcp_latency.py [--calls 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from pipeline.tools.base import Tool
from pipeline.tools.mcp_client import McpServerTools
from pipeline.tools.mcp_server import convert
from pipeline.tools.settings import McpServerSettings

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".benchmarks_out"
CASES = [
    {"value": 1.5, "from_unit": "GiB", "to_unit": "MB"},
    {"value": 212, "from_unit": "F", "to_unit": "C"},
    {"value": 10, "from_unit": "km", "to_unit": "mi"},
    {"value": 90, "from_unit": "min", "to_unit": "h"},
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def convert_units(value: float, from_unit: str, to_unit: str) -> float:
    """Convert a quantity between units.

    Args:
        value: the number to convert.
        from_unit: unit of the value.
        to_unit: unit wanted.
    """
    return convert(value, from_unit, to_unit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    local = Tool.from_function(convert_units)
    settings = McpServerSettings(name="tessera", command=sys.executable, args=["-m", "pipeline.tools.mcp_server"])
    started = time.perf_counter()
    with McpServerTools(settings) as server:
        start_s = time.perf_counter() - started
        remote = {item.name: item for item in server.tools()}["convert_units"]
        for case in CASES * 5:  # warm both paths
            assert remote.run(case).ok and local.run(case).ok
        mcp_ms, local_ms, bare_ms = [], [], []
        for i in range(args.calls):
            case = CASES[i % len(CASES)]
            t0 = time.perf_counter()
            result = remote.run(case)
            t1 = time.perf_counter()
            baseline = local.run(case)
            t2 = time.perf_counter()
            convert_units(**case)
            t3 = time.perf_counter()
            if not (result.ok and baseline.ok):
                raise SystemExit(f"a call failed: {result.text} / {baseline.text}")
            mcp_ms.append((t1 - t0) * 1000)
            local_ms.append((t2 - t1) * 1000)
            bare_ms.append((t3 - t2) * 1000)
        started = time.perf_counter()
    close_s = time.perf_counter() - started

    figures = {
        "calls": args.calls,
        "mcp_ms": {"p50": statistics.median(mcp_ms), "p95": percentile(mcp_ms, 95), "mean": statistics.mean(mcp_ms)},
        "in_process_ms": {"p50": statistics.median(local_ms), "p95": percentile(local_ms, 95),
                          "mean": statistics.mean(local_ms)},
        "bare_function_ms": {"p50": statistics.median(bare_ms), "p95": percentile(bare_ms, 95),
                             "mean": statistics.mean(bare_ms)},
        "server_start_s": start_s,
        "server_close_s": close_s,
    }
    figures["ratio_p50"] = figures["mcp_ms"]["p50"] / figures["in_process_ms"]["p50"]
    figures["ratio_p95"] = figures["mcp_ms"]["p95"] / figures["in_process_ms"]["p95"]
    print(f"convert_units, {args.calls} calls each, alternating (server start {start_s:.2f} s, close {close_s:.2f} s)")
    print(f"{'path':<28} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for label, key in (("MCP (stdio, sync bridge)", "mcp_ms"), ("in-process Tool.run", "in_process_ms"),
                       ("bare function", "bare_function_ms")):
        row = figures[key]
        print(f"{label:<28} {row['p50']:>8.3f} {row['p95']:>8.3f} {row['mean']:>8.3f}")
    print(f"MCP / bare function: p50 x{figures['mcp_ms']['p50'] / figures['bare_function_ms']['p50']:.0f}")
    print(f"MCP / in-process Tool.run: p50 x{figures['ratio_p50']:.1f}, p95 x{figures['ratio_p95']:.1f}; "
          f"MCP adds {figures['mcp_ms']['p50'] - figures['in_process_ms']['p50']:.2f} ms per call at the median")
    OUT.mkdir(exist_ok=True)
    (OUT / "mcp_latency.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
