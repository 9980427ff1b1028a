"""The agent compiles like the RAG program: same splits, same report, its selector and answer step get demos from
its own successful runs, and the saved program loads into a freshly built agent."""

import json
import re

import dspy

from optimizers.compile import CompileRequest, run_compile
from pipeline.agent.program import Agent
from pipeline.lm.scripted import TextLM
from pipeline.tools.calculator import calculator
from pipeline.tools.registry import ToolRegistry


def field(text, name):
    match = re.search(rf"\[\[ ## {name} ## \]\]\n(.*?)(?:\n\n\[\[ ## |\Z)", text, re.DOTALL)
    return match.group(1).strip() if match else ""


def reply(messages):
    """Multiplies through the calculator, then answers with the number it got."""
    prompt = messages[-1]["content"]
    if "[[ ## tool ## ]]" in messages[0]["content"]:
        steps = field(prompt, "steps")
        if "->" in steps:
            return "[[ ## arguments ## ]]\n{}\n\n[[ ## tool ## ]]\nanswer\n\n[[ ## completed ## ]]"
        a, b = re.findall(r"\d+", field(prompt, "question"))[:2]
        return f'[[ ## arguments ## ]]\n{{"expression": "{a} * {b}"}}\n\n[[ ## tool ## ]]\ncalculator\n\n[[ ## completed ## ]]'
    number = field(prompt, "results").split("->")[-1].strip()
    return f"[[ ## answer ## ]]\nThe product is {number}.\n\n[[ ## completed ## ]]"


def test_the_agent_compiles_with_bootstrap_and_its_compiled_state_loads(tmp_path):
    tasks = tmp_path / "agent.jsonl"
    with tasks.open("w") as handle:
        for n in range(10):
            a, b = 11 + n, 3 + n
            handle.write(json.dumps({"id": f"t{n}", "kind": "calculator", "question": f"What is {a} times {b}?",
                                     "answer": f"{a * b}", "facts": [str(a * b)], "tools": ["calculator"],
                                     "calls": [{"tool": "calculator", "arguments": {"expression": f"{a} * {b}"}}],
                                     "refuse": False, "sources": []}) + "\n")
    request = CompileRequest(program="agent", eval_set=tasks, train=4, dev=3, test=3, out_dir=tmp_path / "out",
                             hyperparameters={"max_bootstrapped_demos": 2, "max_labeled_demos": 2})
    student = Agent(ToolRegistry([calculator]), demos=False)
    with dspy.context(lm=TextLM(reply)):
        report = run_compile(request, student, track=False)
    objective = next(c for c in report.comparisons if c.split == "test" and c.metric == "objective")
    assert objective.before == objective.after == 1.0
    assert {c.metric for c in report.comparisons} >= {"tool_selection", "answer_correctness", "steps_used"}
    assert "answer_correctness" in report.objective and "tool_selection" in report.objective
    compiled = report.outcome.program
    bootstrapped = [demo for demo in compiled.select.demos if demo.get("steps")]
    assert bootstrapped and all(demo.tool in ("calculator", "answer") for demo in bootstrapped)
    fresh = Agent(ToolRegistry([calculator]), demos=False)
    fresh.load(str(report.program_path), allow_pickle=False)
    assert len(fresh.select.demos) == len(compiled.select.demos) and fresh.answer.demos
