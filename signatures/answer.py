"""The answer-generation task of the RAG program."""

import dspy


class AnswerFromContext(dspy.Signature):
    """Answer the question in one short sentence, using only facts stated in the context.
    If the context does not contain the answer, say that the documents do not say."""

    context: str = dspy.InputField(desc="numbered passages from the documents")
    question: str = dspy.InputField()
    answer: str = dspy.OutputField()
