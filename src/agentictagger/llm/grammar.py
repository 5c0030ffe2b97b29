"""GBNF grammars for llama.cpp (the embedded backend and the local server alike)."""

from __future__ import annotations

from collections.abc import Sequence


def gbnf_literal(s: str) -> str:
    """``s`` as a GBNF string literal that matches exactly its UTF-8 bytes.

    Everything outside printable ASCII is written as a \\x/\\u/\\U escape so that neither the
    grammar parser nor a terminal can reinterpret it; quotes and backslashes are escaped.
    """
    out = ['"']
    for ch in s:
        cp = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif 0x20 <= cp < 0x7F:
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif cp < 0x80:
            out.append(f"\\x{cp:02X}")
        elif cp <= 0xFFFF:
            out.append(f"\\u{cp:04X}")
        else:
            out.append(f"\\U{cp:08X}")
    out.append('"')
    return "".join(out)


def choice_grammar(choices: Sequence[str]) -> str:
    """GBNF whose language is exactly ``choices`` (the end of generation is forced after it)."""
    return "root ::= " + " | ".join(gbnf_literal(c) for c in choices) + "\n"
