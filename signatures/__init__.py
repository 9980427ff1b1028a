"""Every dspy.Signature of the project: one class per task, its docstring the instruction."""

from signatures.answer import AnswerFromContext

__all__ = ["AnswerFromContext"]
