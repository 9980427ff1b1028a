"""A scripted LM for the agent tests: ChatAdapter replies in order, every prompt kept."""

from dspy.utils import DummyLM


class ScriptLM(DummyLM):
    """Replies with the next dict of `answers` (ChatAdapter fields) and keeps every prompt it was sent."""

    def __init__(self, answers):
        super().__init__(answers)
        self.prompts = []

    def __call__(self, prompt=None, messages=None, **kwargs):
        self.prompts.append("\n".join(message["content"] for message in messages))
        return super().__call__(prompt=prompt, messages=messages, **kwargs)


def select(tool, arguments="{}"):
    return {"tool": tool, "arguments": arguments}


def answer(text):
    return {"answer": text}
