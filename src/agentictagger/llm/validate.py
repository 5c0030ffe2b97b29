"""Check a model's raw answer against the request's output constraint.

Every backend's answer goes through :func:`validate_answer`, even when the backend decoded under
a grammar or a JSON schema: servers may silently ignore ``response_format``, and a re-ask is only
possible if the client notices. The tolerance here is deliberately narrow (whitespace, quotes,
a trailing period, letter case, a ```json fence) so that a sloppy but unambiguous answer is
accepted and anything else is re-asked rather than guessed.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

import jsonschema

from agentictagger.llm.types import (
    ChatRequest,
    ChoiceConstraint,
    InvalidAnswerError,
    JsonSchemaConstraint,
)

_QUOTES = "\"'`\u201c\u201d\u2018\u2019"
_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?\s*```$", re.DOTALL)
_PREVIEW_CHARS = 200
_MAX_LISTED_CHOICES = 12


def preview(text: str, limit: int = _PREVIEW_CHARS) -> str:
    """``text`` as a quoted, single-line, truncated string for error messages."""
    flat = text.replace("\n", "\\n")
    if len(flat) > limit:
        flat = flat[:limit] + f"... [{len(text)} chars]"
    return repr(flat)


def _strip_answer(text: str) -> str:
    s = text.strip()
    # Peel quotes and a final period in any order ("'Books'." / "Books.") until stable.
    while True:
        before = s
        if s.endswith(".") and not s.endswith(".."):
            s = s[:-1].rstrip()
        if len(s) >= 2 and s[0] in _QUOTES and s[-1] in _QUOTES:
            s = s[1:-1].strip()
        if s == before:
            return s


def _unwrap_choice_json(text: str) -> str | None:
    """``{"choice": "x"}`` or ``"x"`` as JSON -> ``x``; anything else -> None.

    Structured-output backends wrap a choice in an object; a backend that did not unwrap it (or a
    model that imitated the format from the prompt) should still count as answering ``x``.
    """
    s = _strip_fence(text.strip())
    if not s or s[0] not in "{\"":
        return None
    try:
        value = json.loads(s)
    except ValueError:
        return None
    if isinstance(value, dict) and len(value) == 1 and "choice" in value:
        value = value["choice"]
    return value if isinstance(value, str) else None


def _strip_fence(text: str) -> str:
    m = _FENCE.match(text.strip())
    return m.group(1).strip() if m else text.strip()


def _describe_choices(choices: tuple[str, ...]) -> str:
    shown = ", ".join(repr(c) for c in choices[:_MAX_LISTED_CHOICES])
    if len(choices) > _MAX_LISTED_CHOICES:
        shown += f", ... ({len(choices)} in all)"
    return shown


def validate_choice(constraint: ChoiceConstraint, text: str) -> str:
    """Return the canonical choice string ``text`` names, or raise InvalidAnswerError."""
    # The bare text first, so a choice that itself ends in a period ("Misc.") still matches.
    candidates = [text.strip(), _strip_answer(text)]
    unwrapped = _unwrap_choice_json(text)
    if unwrapped is not None:
        candidates.append(_strip_answer(unwrapped))
    for cand in candidates:
        if cand in constraint.choices:
            return cand
    for cand in candidates:
        folded = cand.casefold()
        hits = [c for c in constraint.choices if c.casefold() == folded]
        # Two choices that differ only in case cannot be told apart case-insensitively.
        if len(hits) == 1:
            return hits[0]
    raise InvalidAnswerError(
        f"answer {preview(text)} is not one of the allowed choices; expected exactly one of: "
        f"{_describe_choices(constraint.choices)}"
    )


@lru_cache(maxsize=256)
def _validator_for(schema_json: str) -> Any:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validate_json(constraint: JsonSchemaConstraint, text: str) -> Any:
    """Return the JSON value in ``text`` if it validates against the schema, else raise."""
    body = _strip_fence(text)
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise InvalidAnswerError(
            f"answer {preview(text)} is not valid JSON ({exc}); expected only a JSON value matching "
            f"the schema {constraint.name!r}: {preview(json.dumps(constraint.schema), 400)}"
        ) from None
    try:
        validator = _validator_for(json.dumps(constraint.schema, sort_keys=True))
    except jsonschema.SchemaError as exc:
        # A broken schema is a programming error in the caller, not something a re-ask can fix.
        raise ValueError(f"JsonSchemaConstraint {constraint.name!r} has an invalid schema: {exc.message}") from exc
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise InvalidAnswerError(
            f"answer {preview(text)} does not match the schema {constraint.name!r}: at {where}: "
            f"{error.message}; expected JSON matching: {preview(json.dumps(constraint.schema), 400)}"
        )
    return value


def validate_answer(request: ChatRequest, text: str) -> Any:
    """The parsed answer: the canonical choice, the JSON value, or the text when unconstrained.

    Raises :class:`InvalidAnswerError` quoting the (truncated) answer and saying what was expected.
    """
    constraint = request.constraint
    if constraint is None:
        return text
    if isinstance(constraint, ChoiceConstraint):
        return validate_choice(constraint, text)
    if isinstance(constraint, JsonSchemaConstraint):
        return validate_json(constraint, text)
    raise TypeError(f"unknown constraint type {type(constraint).__name__}")
