"""Every dspy.Signature of the project: one class per task, its docstring the instruction."""

from signatures.agent import AnswerWithTools, SelectTool
from signatures.answer import AnswerFromContext
from signatures.judges import (
    JudgeAnswerRelevance,
    JudgeContextSufficiency,
    JudgeCorrectness,
    JudgeFaithfulness,
    JudgeSafety,
)

__all__ = [
    "AnswerFromContext",
    "AnswerWithTools",
    "JudgeAnswerRelevance",
    "JudgeContextSufficiency",
    "JudgeCorrectness",
    "JudgeFaithfulness",
    "JudgeSafety",
    "SelectTool",
]
