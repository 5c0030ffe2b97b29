"""agentictagger: hierarchical, human-readable item descriptors as semantic IDs for recommenders.

``from agentictagger import AgenticTagger`` (see :mod:`agentictagger.api`)."""

from typing import Any

__version__ = "0.1.0"
__all__ = ["AgenticTagger", "__version__"]


def __getattr__(name: str) -> Any:  # the API object on first use: `import agentictagger` stays light
    if name == "AgenticTagger":
        from agentictagger.api import AgenticTagger

        return AgenticTagger
    raise AttributeError(f"module 'agentictagger' has no attribute {name!r}")
