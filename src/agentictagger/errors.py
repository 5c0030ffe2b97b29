"""Every error that crosses a layer, in one low module every layer may import.

The CLI turns a :class:`RunError` into one line on stderr and exit status 2; the others name what
failed and what to do in their message. Errors that never leave their module (a backend's own
retry signals, a prompt that does not fit) stay beside the code that raises them."""

from __future__ import annotations

from typing import Sequence


class RunError(RuntimeError):
    """A run cannot start or did not finish; the message (one line) says what to do."""


class StaleStateError(RunError):
    """The run folder holds a stage's checkpoints made with other settings."""


class RunLockedError(RunError):
    """Another process holds the run folder's lock."""


class EditError(RunError, ValueError):
    """An edit that names an unknown descriptor, changes nothing, or would break the tree; the
    message (one line) says which and why."""


class NotFittedError(RuntimeError):
    """The tagger's run folder has no vocabulary or semantic-ID table yet: call ``fit`` first."""


class CatalogError(ValueError):
    """A catalog could not be loaded. ``problems`` holds one line per bad row."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class EmbeddingError(RuntimeError):
    """The embedding model could not be found or loaded."""


class BuildError(RuntimeError):
    """Some jobs failed for good; their state stays in the run folder and a rerun resumes them."""


class AssignError(RuntimeError):
    """The assignment did not succeed (too many empty paths); no final output was written."""


class InvalidPathError(ValueError):
    """An assigner returned a path that does not walk down the vocabulary tree."""


class LLMError(RuntimeError):
    """A call that failed for good (after retries / re-asks). Never swallowed."""


class TransientLLMError(LLMError):
    """Worth retrying: 429, 5xx, timeouts, dropped connections."""


class InvalidAnswerError(LLMError):
    """The model's answer does not satisfy the constraint."""
