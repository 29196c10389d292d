"""Expression source -> the tokens Jinja's parser reads, in one regular-expression pass.

Jinja lexes an expression with a general template lexer and three generators on top of it, which costs about
three times the parse itself; a 2,000-node journey has about a thousand expressions. This lexer gives the very
same tokens for the common case: it uses Jinja's own token patterns, in Jinja's order, and converts values as
Jinja's `Lexer.wrap` does. Whatever it does not handle exactly like Jinja (a '}}', a '\\r', brackets that do not
match, a value that does not convert) it leaves to Jinja, so errors keep Jinja's words and positions.
"""

from __future__ import annotations

import re
from ast import literal_eval

from jinja2._identifier import pattern as name_re  # the lexer's own name pattern
from jinja2.lexer import (
    TOKEN_FLOAT,
    TOKEN_INTEGER,
    TOKEN_NAME,
    TOKEN_STRING,
    Token,
    float_re,
    integer_re,
    operator_re,
    operators,
    string_re,
    whitespace_re,
)

# Jinja tries these rules one after the other at each position and takes the first that matches; an
# alternation of named groups does the same. Each keeps the flags Jinja compiled it with. Whitespace, which
# Jinja drops, is matched in front of each token instead of as a token of its own.
_LEXEME = re.compile(
    f"(?P<space>{whitespace_re.pattern}|)(?:"
    + "|".join(
        f"(?P<{group}>(?{flags}:{pattern.pattern}))"
        for group, flags, pattern in (
            (TOKEN_FLOAT, "ix", float_re),
            (TOKEN_INTEGER, "ix", integer_re),
            (TOKEN_NAME, "", name_re),
            (TOKEN_STRING, "s", string_re),
            ("operator", "", operator_re),
        )
    )
    + ")"
)
_CLOSING = {"(": ")", "[": "]", "{": "}"}


def raw_string(token_text: str) -> str:
    """Make a Jinja string literal raw, so a regex's backslashes survive; keep escaped quotes."""
    quote, inner = token_text[0], token_text[1:-1]
    doubled = inner.replace("\\", "\\\\").replace("\\\\" + quote, "\\" + quote)
    return quote + doubled + quote


def tokens(source: str) -> list[Token] | None:
    """The tokens of an expression (string literals raw), as Jinja's lexer gives them in its 'variable' state;
    None when the source needs Jinja's own lexer."""
    if "}}" in source or "\r" in source:  # the end of a {{ }} block, or line ends Jinja rewrites first
        return None
    source = source.removesuffix("\n")  # as Jinja does, without keep_trailing_newline
    found: list[Token] = []
    open_brackets: list[str] = []
    position, line = 0, 1
    try:
        for match in _LEXEME.finditer(source):
            if match.start() != position:  # a character no rule matches
                return None
            position = match.end()
            line += match.group("space").count("\n")
            kind = str(match.lastgroup)  # the token's group: it closes last
            text = value = match.group(kind)
            if kind == "operator":
                if text in _CLOSING:
                    open_brackets.append(_CLOSING[text])
                elif text in (")", "]", "}") and (not open_brackets or open_brackets.pop() != text):
                    return None
                kind = operators[text]
            elif kind == TOKEN_NAME and not text.isidentifier():
                return None
            elif kind == TOKEN_STRING:
                value = raw_string(text)[1:-1].encode("ascii", "backslashreplace").decode("unicode-escape")
            elif kind == TOKEN_INTEGER:
                value = int(text.replace("_", ""), 0)
            elif kind == TOKEN_FLOAT:
                value = literal_eval(text.replace("_", ""))
            found.append(Token(line, kind, value))
            if kind == TOKEN_STRING:
                line += text.count("\n")
    except (ValueError, SyntaxError, UnicodeError, MemoryError, RecursionError):
        return None  # Jinja says what is wrong, where
    if source[position:].strip():
        return None
    return found
