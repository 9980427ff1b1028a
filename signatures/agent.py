"""The agent's two tasks: choose the next tool call (or to answer), and answer from the tool results."""

import dspy


class SelectTool(dspy.Signature):
    """Choose the next step towards answering the question: write the arguments of the tool call as
    a JSON object, then the tool from the list that takes them. Write {} and answer as the tool when
    the steps so far hold what the answer needs (or when no tool fits the question)."""

    question: str = dspy.InputField()
    tools: str = dspy.InputField(desc="the tools you may call, one per line: name(arguments) - what it does")
    steps: str = dspy.InputField(desc="the tool calls made so far and what each returned")
    arguments: str = dspy.OutputField(desc='the arguments as a JSON object, e.g. {"expression": "2 * 3"}; {} for answer')
    tool: str = dspy.OutputField(desc="one tool name from the list, or answer")


class AnswerWithTools(dspy.Signature):
    """Answer the question in one short sentence, using the tool results. Give numbers exactly as
    the results state them. If the results do not hold the answer, say that you could not find it."""

    question: str = dspy.InputField()
    results: str = dspy.InputField(desc="each tool call made and what it returned")
    answer: str = dspy.OutputField()
