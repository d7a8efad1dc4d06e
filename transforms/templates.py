"""Key templates: "CUSTOMER#{customer_id}", "ORDER#{placed_at:%Y-%m-%d}#{order_id:08d}".

A template is text with placeholders `{column}` or `{column:format}`; `{{` and `}}` are
literal braces. Formats are either a zero padding (`08d`: at least 8 digits) or a date
pattern in strftime notation (`%Y-%m-%d`), which is translated to Spark's date_format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PADDING = re.compile(r"^0(\d{1,2})d$")

# strftime directive -> Spark datetime pattern (the subset that keys use).
STRFTIME_TO_SPARK = {
    "%Y": "yyyy",
    "%m": "MM",
    "%d": "dd",
    "%H": "HH",
    "%M": "mm",
    "%S": "ss",
    "%f": "SSSSSS",
    "%j": "DDD",
}


@dataclass(frozen=True)
class Text:
    value: str


@dataclass(frozen=True)
class Placeholder:
    column: str
    format: str | None = None


Part = Text | Placeholder


class TemplateSyntaxError(ValueError):
    pass


def parse_template(template: str) -> tuple[Part, ...]:
    parts: list[Part] = []
    text: list[str] = []
    i = 0
    while i < len(template):
        char = template[i]
        if template.startswith("{{", i) or template.startswith("}}", i):
            text.append(char)
            i += 2
        elif char == "{":
            end = template.find("}", i)
            if end == -1:
                raise TemplateSyntaxError(f"unclosed '{{' at position {i + 1}; write '{{{{' for a literal brace")
            if text:
                parts.append(Text("".join(text)))
                text = []
            parts.append(_placeholder(template[i + 1 : end]))
            i = end + 1
        elif char == "}":
            raise TemplateSyntaxError(f"unmatched '}}' at position {i + 1}; write '}}}}' for a literal brace")
        else:
            text.append(char)
            i += 1
    if text:
        parts.append(Text("".join(text)))
    return tuple(parts)


def _placeholder(body: str) -> Placeholder:
    column, _, fmt = body.partition(":")
    column = column.strip()
    if not IDENTIFIER.match(column):
        raise TemplateSyntaxError(f"'{{{body}}}' does not name a column; write {{column}} or {{column:format}}")
    if fmt:
        spark_date_pattern(fmt) if "%" in fmt else _padding_width(fmt)
    return Placeholder(column, fmt or None)


def _padding_width(fmt: str) -> int:
    match = PADDING.match(fmt)
    if not match:
        raise TemplateSyntaxError(
            f"unknown format '{fmt}'; use a zero padding like '08d' or a date pattern like '%Y-%m-%d'"
        )
    return int(match.group(1))


def padding_width(fmt: str) -> int:
    return _padding_width(fmt)


def spark_date_pattern(fmt: str) -> str:
    """Translate a strftime pattern to a Spark one, quoting the literal text."""
    out: list[str] = []
    literal: list[str] = []
    i = 0
    while i < len(fmt):
        directive = fmt[i : i + 2]
        if fmt[i] == "%":
            if directive not in STRFTIME_TO_SPARK:
                known = ", ".join(STRFTIME_TO_SPARK)
                raise TemplateSyntaxError(f"unknown date directive '{directive}'; known: {known}")
            if literal:
                out.append("'" + "".join(literal).replace("'", "''") + "'")
                literal = []
            out.append(STRFTIME_TO_SPARK[directive])
            i += 2
        else:
            literal.append(fmt[i])
            i += 1
    if literal:
        out.append("'" + "".join(literal).replace("'", "''") + "'")
    return "".join(out)


def template_columns(template: str) -> tuple[str, ...]:
    return tuple(p.column for p in parse_template(template) if isinstance(p, Placeholder))


def is_template(value: str) -> bool:
    return "{" in value
