"""The agent loop as an explicit LangGraph `StateGraph`: input guard → select → run tool → select … → answer →
output guard.

The graph is compiled once per process and holds no program: a compiled graph cannot be deep-copied, and DSPy's
optimizers copy programs, so each node finds the `Agent` (its predictors, tools and guards) in
`config["configurable"]["program"]`. Routers are pure functions of the state. Every failure a node can meet (an
unknown tool, bad arguments, a tool that raises or hangs, an unreadable LM reply) becomes a step the selector reads;
only budget and programming errors leave the graph.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Literal

import dspy
from dspy.utils.exceptions import AdapterParseError
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from guardrails.base import GuardContext
from pipeline.agent.selection import (
    arguments_text,
    call_key,
    choose,
    ground,
    nearest_demos,
    tool_list,
    transcript,
    with_fields,
)
from pipeline.agent.state import Action, AgentState, Step, budget_left
from pipeline.lm.plain_adapter import PlainAdapter
from pipeline.programs.rag import refusal
from pipeline.tools.base import ToolResult
from pipeline.tracing import span

SUMMARY_CHARS = 100
SELECTOR_RESULT_CHARS = 400  # what the selector reads of each result: enough to see what came back
ANSWER_RESULT_CHARS = 2400  # what the answer step reads of each result: the passages themselves
UNREADABLE = ("error: your reply could not be read. Write the tool name on the Tool line and its arguments as a JSON "
              "object on the Arguments line, or answer.")
PLAIN_SELECT_STOPS = ("\n\n", "\nQuestion:")
NO_ANSWER = "I could not produce an answer from the tool results."


def program_of(config: RunnableConfig) -> dspy.Module:
    return config["configurable"]["program"]


def _step(tool: str, arguments: Any, result: str, *, ok: bool, kind: str) -> Step:
    line = " ".join(result.split())
    summary = line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1] + "…"
    return Step(tool=tool, arguments=arguments_text(arguments), result=result, summary=summary, ok=ok, kind=kind)


# Nodes ------------------------------------------------------------------------------------------------------------


def guard_input(state: AgentState, config: RunnableConfig) -> dict:
    """Screen the question; a blocked one ends the loop with a refusal, a redacted one goes on redacted."""
    program = program_of(config)
    root = config["configurable"].get("root")
    if not program.input_guard:
        if root is not None:
            program.record_inputs(root, state["question"])
        return {}
    started = time.perf_counter()
    checked = program.input_guard.run(state["question"])
    update: dict[str, Any] = {"guard_results": list(checked.results),
                              "timings": {"input_guard": time.perf_counter() - started}}
    if not checked.allowed:
        if root is not None:
            program.record_inputs(root, None)
        return {**update, "blocked": True, "answer": refusal(checked.category)}
    if root is not None:
        program.record_inputs(root, checked.text)
    return {**update, "question": checked.text, "unchecked": int(bool(checked.unchecked))}


def select(state: AgentState, config: RunnableConfig) -> dict:
    """Ask the selector for the next step and read its reply against the allowed tools."""
    program = program_of(config)
    started = time.perf_counter()
    recorded = {"question": state["question"]} if program.record_question else {}
    with span("select", "CHAT_MODEL", inputs={**recorded, "steps": len(state["steps"])}) as current:
        try:
            tools = tool_list(program.registry, brief=isinstance(dspy.settings.adapter, PlainAdapter))
            # Every demo shows the live tool list: a small LM copies the demo nearest its question, so the demos
            # and the question must look alike but for the question itself.
            pool = [*program.select.demos, *program.fallback_demos[0]]
            demos = [with_fields(demo, tools=tools) for demo in
                     nearest_demos(pool, state["question"], len(state["steps"]), program.select_demos)]
            reply = program.select(
                question=state["question"], tools=tools, demos=demos,
                steps=transcript(state["steps"], SELECTOR_RESULT_CHARS), config=_select_config(program),
            )
            tool_text, args_text = str(reply.get("tool") or ""), reply.get("arguments")
        except AdapterParseError:
            tool_text, args_text = None, None
        current.set_outputs({"tool": tool_text, **({"arguments": arguments_text(args_text)} if program.record_question
                                                    else {})})
    update: dict[str, Any] = {"timings": {"select": time.perf_counter() - started}}
    if tool_text is None:
        if _lost_the_thread(state):
            return {**update, "action": Action(route="answer", tool="", arguments=None)}
        return {**update, **_correction(state, "?", "", UNREADABLE)}
    choice = choose(program.registry, tool_text, args_text)
    if choice.tool is not None:
        choice = ground(choice, program.registry.get(choice.tool), state["question"],
                        [*program.select.demos, *program.fallback_demos[0]])
    if choice.prose and _lost_the_thread(state):
        # A small LM that has its result tends to write on (a passage, the transcript) instead of "answer";
        # a correction would only be copied into its next reply. Answer from what is there.
        return {**update, "action": Action(route="answer", tool="", arguments=None)}
    if choice.error is not None:
        label = choice.tool or next((line.strip() for line in tool_text.splitlines() if line.strip()), "?")[:60]
        return {**update, **_correction(state, label, choice.arguments, choice.error)}
    if choice.tool is None:
        return {**update, "action": Action(route="answer", tool="", arguments=None)}
    tool = program.registry.get(choice.tool)
    key = call_key(tool, choice.arguments)
    if key in state["calls"]:
        # A small LM often asks again for what it has; running it again would only loop. Answer from what is there.
        note = f"stopped: {choice.tool} was already called with these arguments; its result is above."
        step = _step(choice.tool, choice.arguments, note, ok=False, kind="repeat")
        return {**update, "steps": [step], "action": Action(route="answer", tool="", arguments=None), "stopped": "repeat"}
    return {**update, "action": Action(route="tool", tool=choice.tool, arguments=choice.arguments)}


def _select_config(program: dspy.Module) -> dict:
    config = dict(program.select_config)
    if isinstance(dspy.settings.adapter, PlainAdapter):
        # The plain adapter's two lines (Tool, Arguments) end at a blank line; a small LM goes on past them with
        # a made-up next question.
        config.setdefault("stop", list(PLAIN_SELECT_STOPS))
    return config


def _lost_the_thread(state: AgentState) -> bool:
    """A reply that names no tool, after a tool has answered or right after a correction: the selector is done or
    lost, and more corrections would not bring it back."""
    steps = state["steps"]
    return any(step["kind"] == "call" and step["ok"] for step in steps) or bool(steps and steps[-1]["kind"] == "correction")


def _correction(state: AgentState, tool: str, arguments: Any, message: str) -> dict:
    out_of_budget = budget_left(state) <= 1
    return {"steps": [_step(tool, arguments, message, ok=False, kind="correction")],
            "action": Action(route="answer" if out_of_budget else "retry", tool=tool, arguments=arguments),
            **({"stopped": "budget"} if out_of_budget else {})}


def run_tool(state: AgentState, config: RunnableConfig) -> dict:
    """Run the chosen tool and pass what it returned through the context guard before any LM reads it."""
    program = program_of(config)
    action = state["action"]
    tool = program.registry.get(action["tool"])
    inputs = {"tool": tool.name, **({"arguments": arguments_text(action["arguments"])} if program.record_question else {})}
    update: dict[str, Any] = {"timings": {}}
    with span(f"tool.{tool.name}", "TOOL", inputs=inputs) as current:
        started = time.perf_counter()
        result = tool.run(action["arguments"])
        update["timings"]["tools"] = time.perf_counter() - started
        started = time.perf_counter()
        result, verdicts, unchecked = _screen(program, state["question"], result)
        update["timings"]["context_guard"] = time.perf_counter() - started
        current.set_outputs({"ok": result.ok, "result": result.text if program.record_question else len(result.text),
                             "citations": list(result.citations)})
    step = _step(tool.name, action["arguments"], result.text, ok=result.ok, kind="call")
    update.update(steps=[step], calls=[call_key(tool, action["arguments"])], citations=list(result.citations), hits=list(result.hits), guard_results=verdicts,
                  unchecked=unchecked)
    if budget_left(state) <= 1:
        update["stopped"] = "budget"
    return update


def _screen(program: dspy.Module, question: str, result: ToolResult) -> tuple[ToolResult, list, int]:
    """Tool output is untrusted: the context guard drops it when it carries an injection and redacts PII in it.

    Document passages (results with hits) were screened passage by passage by GuardedRetrieval already."""
    chain = program.context_guard
    if not chain or result.hits or not result.text:
        return result, [], 0
    checked = chain.run(result.text, GuardContext(question=question))
    if not checked.allowed:
        withheld = f"error: the tool's output was withheld by the context guard ({checked.category})"
        return ToolResult(withheld, ok=False), list(checked.results), 0
    if checked.text != result.text:
        result = ToolResult(checked.text, ok=result.ok, citations=result.citations, hits=result.hits, data=None)
    return result, list(checked.results), int(bool(checked.unchecked))


def answer(state: AgentState, config: RunnableConfig) -> dict:
    """Answer from the tool results; when the budget ended the loop, say so."""
    program = program_of(config)
    started = time.perf_counter()
    calls = [step for step in state["steps"] if step["kind"] == "call"]
    recorded = {"question": state["question"]} if program.record_question else {}
    with span("answer", "CHAT_MODEL", inputs={**recorded, "results": len(calls)}) as current:
        try:
            demos = nearest_demos([*program.answer.demos, *program.fallback_demos[1]], state["question"], 0,
                                  program.answer_demos)
            results = transcript(calls, ANSWER_RESULT_CHARS)
            text = str(program.answer(question=state["question"], results=results, demos=demos).answer)
        except AdapterParseError:
            text = ""
        text = text.strip() or NO_ANSWER
        current.set_outputs({"answer": text})
    if state.get("stopped") == "budget":
        text += (f" (Stopped after {len(state['steps'])} steps, the step budget: this is the best answer from the "
                 "results so far.)")
    return {"answer": text, "timings": {"answer": time.perf_counter() - started}}


def guard_output(state: AgentState, config: RunnableConfig) -> dict:
    """Check the answer against what the tools returned; a blocked answer becomes a refusal."""
    program = program_of(config)
    if not program.output_guard:
        return {}
    started = time.perf_counter()
    contexts = [f"{step['tool']}({step['arguments']}) -> {step['result']}" for step in state["steps"]
                if step["kind"] == "call" and step["ok"]]
    context = GuardContext(question=state["question"], contexts=contexts, context_ids=list(state["citations"]),
                           citations=list(state["citations"]))
    checked = program.output_guard.run(state["answer"], context)
    update: dict[str, Any] = {"guard_results": list(checked.results),
                              "timings": {"output_guard": time.perf_counter() - started}}
    if not checked.allowed:
        return {**update, "blocked": True, "answer": refusal(checked.category)}
    return {**update, "answer": checked.text, "unchecked": int(bool(checked.unchecked))}


# Routers ----------------------------------------------------------------------------------------------------------


def after_input_guard(state: AgentState) -> Literal["select", "__end__"]:
    return END if state.get("blocked") else "select"


def after_select(state: AgentState) -> Literal["run_tool", "select", "answer"]:
    route = state["action"]["route"]
    if route == "tool":
        return "run_tool"
    return "select" if route == "retry" else "answer"


def after_tool(state: AgentState) -> Literal["select", "answer"]:
    return "answer" if state.get("stopped") else "select"


def recursion_limit(max_steps: int) -> int:
    """Graph steps a run may take: two per tool step (select, run), plus input guard, a last select, answer and
    output guard, with room to spare. The budget in the state ends the loop first; this is the backstop."""
    return 2 * max_steps + 6


@functools.cache
def agent_graph():
    """The compiled loop, shared by every Agent (it holds no state of its own)."""
    graph = StateGraph(AgentState)
    graph.add_node("guard_input", guard_input)
    graph.add_node("select", select)
    graph.add_node("run_tool", run_tool)
    graph.add_node("answer", answer)
    graph.add_node("guard_output", guard_output)
    graph.add_edge(START, "guard_input")
    graph.add_conditional_edges("guard_input", after_input_guard)
    graph.add_conditional_edges("select", after_select)
    graph.add_conditional_edges("run_tool", after_tool)
    graph.add_edge("answer", "guard_output")
    graph.add_edge("guard_output", END)
    return graph.compile()
