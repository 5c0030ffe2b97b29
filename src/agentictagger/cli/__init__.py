"""The command line: a thin layer over :class:`agentictagger.api.AgenticTagger` and the run layer."""

from agentictagger.cli.main import app

__all__ = ["app"]
