"""The agent program: a `dspy.Module` holding the selector and answer predictors, the allowed tools and the guards;
LangGraph (pipeline.agent.graph) runs the loop.

Optimizers find and tune `select` and `answer` like any predictor; copies of the program share the tools and guards
(MCP clients, a database connection, guard models), which are never copied. The prediction has the fields the RAG
program's has (answer, citations, contexts, hits, timings, blocked, guard_results, unchecked), plus the steps taken
and why the loop stopped early, so serving can ship either program.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dspy

from guardrails.chain import GuardChain
from pipeline.agent.graph import agent_graph, recursion_limit
from pipeline.agent.state import initial_state
from pipeline.errors import ConfigError, EvalSetError
from pipeline.programs.rag import QUESTION_NOT_RECORDED, check_question
from pipeline.tools.registry import ToolRegistry
from pipeline.tracing import span
from signatures import AnswerWithTools, SelectTool

log = logging.getLogger(__name__)

DEFAULT_MAX_STEPS = 4
SELECT_MAX_TOKENS = 64  # a tool name and a JSON object; a small LM otherwise writes on for the LM's whole allowance
# Demos the selector reads per turn, the nearest to the question (pipeline.agent.selection). SmolLM2-135M chose the
# calculator for "What is 1234 multiplied by 5678?" in 2 of 2 runs with 2 demos, in 0 of 2 with 4.
SELECT_DEMOS = 2
ANSWER_DEMOS = 3
DEMOS_FILE = "agent_demos.jsonl"


class Agent(dspy.Module):
    """Answer a question by calling tools step by step: the selector picks a tool (or to answer), the tool runs,
    its output is screened, and the answer step answers from the results.

    `max_steps` caps the selector's turns (each call, correction or stopped repeat is one); when it runs out the
    loop answers from what it has and says so. With `demos=True` the bundled demos (eval_sets/agent_demos.jsonl),
    which a small LM needs to fill the selector's fields at all, are a fallback pool beside the predictors' own
    demos: a compile adds demos to choose from instead of replacing them (BootstrapFewShot resets the predictors'
    demos, and a compile that bootstraps no trace would otherwise leave a small LM with fewer demos than before).
    Each selector turn reads the `select_demos` demos of both nearest to the question (and to its stage), the
    answer step the `answer_demos` nearest.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        input_guard: GuardChain | None = None,
        context_guard: GuardChain | None = None,
        output_guard: GuardChain | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        record_question: bool = True,
        demos: bool = True,
        select_demos: int = SELECT_DEMOS,
        answer_demos: int = ANSWER_DEMOS,
        resources: Sequence[Any] = (),
    ) -> None:
        super().__init__()
        if not isinstance(max_steps, int) or max_steps < 1:
            raise ConfigError(f"max_steps must be a whole number of at least 1, got {max_steps!r}")
        if not len(registry):
            raise ConfigError("The agent has no tools: allow at least one in the settings (tools.allow), "
                              "or leave tools.allow out to allow every tool without side effects.")
        self.registry = registry
        self.resources = list(resources)  # what the tools run on (MCP server connections): closed by close()
        self.input_guard = input_guard
        self.context_guard = context_guard
        self.output_guard = output_guard
        self.max_steps = max_steps
        self.record_question = record_question
        self.select_config = {"max_tokens": SELECT_MAX_TOKENS}
        self.select_demos = select_demos
        self.answer_demos = answer_demos
        self.select = dspy.Predict(SelectTool)
        self.answer = dspy.Predict(AnswerWithTools)
        self.fallback_demos = default_demos() if demos else ([], [])  # (selector's, answer step's); not tuned

    # Read-only resources every copy of the program shares (optimizers copy programs many times).
    _shared = ("registry", "resources", "input_guard", "context_guard", "output_guard", "fallback_demos")

    def __deepcopy__(self, memo: dict) -> Agent:
        clone = self.__class__.__new__(self.__class__)
        for name, value in self.__dict__.items():
            clone.__dict__[name] = value if name in self._shared else copy.deepcopy(value, memo)
        return clone

    def close(self) -> None:
        """Stop what the tools run on (MCP servers); every copy of the program shares them."""
        for resource in self.resources:
            resource.close()

    def __call__(self, question: str) -> dspy.Prediction:
        # Like the RAG program, DSPy's module callbacks (MLflow autolog) are bypassed: they would record the
        # question before the input guard has screened it. The predictors' own calls see only screened text.
        question = check_question(question)
        with span("agent", "AGENT") as root:
            config = {"recursion_limit": recursion_limit(self.max_steps),
                      "configurable": {"program": self, "root": root}}
            if self.record_question:
                state = agent_graph().invoke(initial_state(question, self.max_steps), config=config)
            else:
                with dspy.context(callbacks=[]):
                    state = agent_graph().invoke(initial_state(question, self.max_steps), config=config)
            prediction = self._prediction(state)
            root.set_outputs({"answer": prediction.answer, "citations": prediction.citations,
                              "blocked": prediction.blocked, "steps": [step["summary"] for step in prediction.steps],
                              "stopped": prediction.stopped, "unchecked": prediction.unchecked})
        return prediction

    def forward(self, question: str) -> dspy.Prediction:
        """Calling forward calls the program, so the input guard always runs."""
        return self(question=question)

    def record_inputs(self, root: Any, screened: str | None) -> None:
        """The root span's inputs once the input guard has spoken: the screened question, or nothing when blocked."""
        shown = screened if screened is not None and self.record_question else QUESTION_NOT_RECORDED
        root.set_inputs({"question": shown})

    @staticmethod
    def _prediction(state: dict) -> dspy.Prediction:
        blocked = bool(state.get("blocked"))
        hits = [] if blocked else list(state["hits"])
        citations = [] if blocked else list(dict.fromkeys(state["citations"]))
        steps = [{key: step[key] for key in ("tool", "arguments", "summary", "ok", "kind")} | {"result": step["result"]}
                 for step in state["steps"]]
        return dspy.Prediction(
            answer=state["answer"],
            citations=citations,
            contexts=[hit.chunk.text for hit in hits],
            hits=hits,
            timings=dict(state["timings"]),
            blocked=blocked,
            guard_results=list(state["guard_results"]),
            unchecked=int(state["unchecked"]),
            steps=steps,
            tools_called=[step["tool"] for step in state["steps"] if step["kind"] == "call"],
            stopped=state.get("stopped"),
        )


def default_demos(path: Path | None = None) -> tuple[list[dspy.Example], list[dspy.Example]]:
    """The selector's and the answer step's starting demos, read from the bundled JSONL file (one demo a line,
    `"predictor": "select"` or `"answer"`)."""
    from pipeline.qa_set import bundled_path

    path = path or bundled_path(DEMOS_FILE)
    fields = {"select": ("question", "tools", "steps", "tool", "arguments"), "answer": ("question", "results", "answer")}
    demos: dict[str, list[dspy.Example]] = {"select": [], "answer": []}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalSetError(f"{path}, line {number}: not valid JSON ({exc.msg}).") from None
        kind = row.get("predictor")
        if kind not in fields or any(name not in row for name in fields[kind]):
            raise EvalSetError(f"{path}, line {number}: a demo needs predictor (select or answer) and "
                               f"{', '.join(fields.get(kind, fields['select']))}.")
        values = {name: row[name] if isinstance(row[name], str) else json.dumps(row[name]) for name in fields[kind]}
        demos[kind].append(dspy.Example(**values).with_inputs(*fields[kind][:-2 if kind == "select" else -1]))
    return demos["select"], demos["answer"]
