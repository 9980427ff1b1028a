"""The agent loop's own overhead per step: time outside the LM and the tools, LangGraph agent vs a bare Python loop.

Both sides run the same predictors, tools and scripted LM on the same questions; each question takes `--calls`
calculator calls and then an answer:
  agent  pipeline.agent.Agent: the LangGraph StateGraph (state reducers, routers, recursion limit), the selector's
         demo ranking and lenient parsing, repeat detection, step records and the prediction
  bare   a `for` loop: call the selector, read its reply with the same `choose`, run the tool, append to the
         transcript, then call the answer step
The LM is `pipeline.lm.scripted.TextLM`, which answers at once. Time inside the predictors (DSPy's adapter and the
LM) and inside `Tool.run` is measured and taken out; what is left, divided by the tool steps, is the loop's own
overhead per step (goal: at most 5 ms). Guards are off on both sides (they are the guards' cost, not the loop's);
MLflow tracing is off unless `--tracing`. Runs alternate between the two sides, so machine noise hits both.

    .venv/bin/python benchmarks/agent_loop.py [--runs 60] [--calls 3] [--tracing]

Tool-selection accuracy and answer correctness before and after compile, on the held-out split, are what
`scripts/compile.py --program agent --optimizer bootstrap` reports (its table: tool_selection, answer_correctness,
refusals_respected, steps_used, each before/after with a 95% CI).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

from pipeline.cli import offline_defaults

offline_defaults()

import dspy
import mlflow

from pipeline.agent.program import Agent
from pipeline.agent.selection import choose, transcript
from pipeline.lm.scripted import TextLM
from pipeline.tools.base import Tool
from pipeline.tools.calculator import calculator
from pipeline.tools.registry import ToolRegistry

OUT = Path(__file__).resolve().parent.parent / ".benchmarks_out"


class Clock:
    """Seconds spent inside predictor calls (adapter + LM) and inside tool calls, while `on`."""

    def __init__(self) -> None:
        self.lm = self.tools = 0.0

    def install(self) -> None:
        predict_call, tool_run = dspy.Predict.__call__, Tool.run
        clock = self

        def timed_predict(self, *args, **kwargs):
            started = time.perf_counter()
            try:
                return predict_call(self, *args, **kwargs)
            finally:
                clock.lm += time.perf_counter() - started

        def timed_run(self, *args, **kwargs):
            started = time.perf_counter()
            try:
                return tool_run(self, *args, **kwargs)
            finally:
                clock.tools += time.perf_counter() - started

        dspy.Predict.__call__ = timed_predict
        Tool.run = timed_run


def scripted_reply(calls: int):
    """Selector: `calls` calculator calls with different arguments, then answer; answer step: the last result."""

    def reply(messages):
        system, prompt = messages[0]["content"], messages[-1]["content"]
        steps = prompt.split("[[ ## steps ## ]]")[-1]
        done = steps.count("->")
        if "[[ ## tool ## ]]" in system:
            if done < calls:
                return (f'[[ ## arguments ## ]]\n{{"expression": "{done + 2} * 7"}}\n\n[[ ## tool ## ]]\ncalculator\n\n'
                        "[[ ## completed ## ]]")
            return "[[ ## arguments ## ]]\n{}\n\n[[ ## tool ## ]]\nanswer\n\n[[ ## completed ## ]]"
        numbers = re.findall(r"-> (\d+)", prompt)
        return f"[[ ## answer ## ]]\n{numbers[-1] if numbers else 'none'}\n\n[[ ## completed ## ]]"

    return reply


def bare_loop(agent: Agent, question: str) -> str:
    steps = []
    for _ in range(agent.max_steps):
        reply = agent.select(question=question, tools=agent.registry.describe(), steps=transcript(steps))
        choice = choose(agent.registry, reply.tool, reply.arguments)
        if choice.tool is None:
            break
        result = agent.registry.get(choice.tool).run(choice.arguments)
        steps.append({"tool": choice.tool, "arguments": json.dumps(choice.arguments), "result": result.text})
    return agent.answer(question=question, results=transcript(steps)).answer


def measure(side: str, agent: Agent, clock: Clock, question: str) -> tuple[float, float, str]:
    clock.lm = clock.tools = 0.0
    started = time.perf_counter()
    answer = agent(question=question).answer if side == "agent" else bare_loop(agent, question)
    wall = time.perf_counter() - started
    return wall, wall - clock.lm - clock.tools, answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=60, help="questions per side (after 5 warm-up runs each)")
    parser.add_argument("--calls", type=int, default=3, help="tool calls per question")
    parser.add_argument("--tracing", action="store_true", help="MLflow tracing on (spans for every step)")
    args = parser.parse_args()
    if args.tracing:
        mlflow.set_tracking_uri(f"sqlite:///{OUT / 'agent_loop_mlflow.db'}")
        mlflow.tracing.enable()
    else:
        mlflow.tracing.disable()

    clock = Clock()
    clock.install()
    agent = Agent(ToolRegistry([calculator]), demos=False, max_steps=args.calls + 2)
    results: dict[str, dict[str, list[float]]] = {side: {"wall": [], "overhead": []} for side in ("agent", "bare")}
    answers = set()
    with dspy.context(lm=TextLM(scripted_reply(args.calls))):
        for run in range(args.runs + 5):
            for side in ("agent", "bare") if run % 2 == 0 else ("bare", "agent"):
                wall, overhead, answer = measure(side, agent, clock, f"Question {run}: multiply a few numbers")
                answers.add(answer)
                if run >= 5:
                    results[side]["wall"].append(wall)
                    results[side]["overhead"].append(overhead)
    if len(answers) != 1:
        raise SystemExit(f"the two loops answered differently: {sorted(answers)}")

    def ms(values):
        return statistics.median(values) * 1000

    agent_step = ms(results["agent"]["overhead"]) / args.calls
    bare_step = ms(results["bare"]["overhead"]) / args.calls
    summary = {
        "runs": args.runs, "tool_calls_per_question": args.calls, "tracing": args.tracing,
        "agent_wall_ms": round(ms(results["agent"]["wall"]), 2), "bare_wall_ms": round(ms(results["bare"]["wall"]), 2),
        "agent_overhead_per_step_ms": round(agent_step, 3), "bare_overhead_per_step_ms": round(bare_step, 3),
        "loop_overhead_added_per_step_ms": round(agent_step - bare_step, 3),
        "wall_ratio_agent_vs_bare": round(ms(results["agent"]["wall"]) / ms(results["bare"]["wall"]), 3),
        "overhead_ratio_agent_vs_bare": round(agent_step / bare_step, 3) if bare_step else None,
    }
    print(f"agent loop ({args.calls} tool calls per question, {args.runs} runs per side, tracing "
          f"{'on' if args.tracing else 'off'}); medians:")
    print(f"  wall per question      agent {summary['agent_wall_ms']:8.2f} ms   bare {summary['bare_wall_ms']:8.2f} ms"
          f"   ratio {summary['wall_ratio_agent_vs_bare']:.2f}x")
    print(f"  overhead per step      agent {agent_step:8.3f} ms   bare {bare_step:8.3f} ms"
          f"   (outside LM and tool calls; goal <= 5 ms)")
    print(f"  added by the graph     {agent_step - bare_step:8.3f} ms per step")
    OUT.mkdir(exist_ok=True)
    (OUT / "agent_loop.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
