"""The agent: a LangGraph loop whose tool selector and answer step are DSPy predictors."""

from pipeline.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "Agent": "pipeline.agent.program",
        "default_demos": "pipeline.agent.program",
        "agent_graph": "pipeline.agent.graph",
        "AgentState": "pipeline.agent.state",
        "Step": "pipeline.agent.state",
        "choose": "pipeline.agent.selection",
        "parse_arguments": "pipeline.agent.selection",
    },
)
