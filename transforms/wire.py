"""What belongs to DynamoDB's wire format itself: its limits, its size rules, one canonical
spelling of an item, and the item digest.

Pure standard library. The transforms check the limits in Spark SQL, the writer and the
capacity proxy size items in Python, and the writer and reconciliation both digest items: each
of them takes the rule from here, so a limit is written down once.

Sizes, as DynamoDB documents them: every attribute name's UTF-8 bytes plus its value: S UTF-8
bytes, N 1 byte per two significant digits + 1, B raw bytes (the wire carries base64 text; the
decoded length counts), BOOL and NULL 1 byte, L and M 3 bytes + 1 byte per element + the
elements (a map element's name counts), SS/NS/BS the sum of their members. A write costs 1 WCU
per started KB of the item.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

# --- limits ------------------------------------------------------------------------------------

KB = 1024
MAX_ITEM_BYTES = 400 * KB  # names included
MAX_PARTITION_KEY_BYTES = 2048
MAX_SORT_KEY_BYTES = 1024
MAX_NUMBER_DIGITS = 38  # significant digits of an N
# Magnitudes an N holds: 1E-130 up to 9.9999999999999999999999999999999999999E+125.
MIN_NUMBER_EXPONENT = -130
MAX_NUMBER_EXPONENT = 125
MAX_BATCH_WRITE_REQUESTS = 25  # BatchWriteItem; 25 items of at most 400 KB also stay under its 16 MB


# --- sizes -------------------------------------------------------------------------------------


def utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def base64_len(text: str) -> int:
    """Raw bytes behind a base64 string, without decoding it."""
    padding = 2 if text.endswith("==") else 1 if text.endswith("=") else 0
    return len(text) * 3 // 4 - padding


def number_size(text: str) -> int:
    """1 byte per two significant digits + 1 (leading and trailing zeros do not count; 0 has one digit)."""
    if text.isdigit():  # the common case, without the splitting below
        digits = len(text.strip("0"))
    else:
        mantissa = text.lstrip("+-").split("e")[0].split("E")[0]
        digits = len(mantissa.replace(".", "").strip("0"))
    return (max(digits, 1) + 1) // 2 + 1


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes DynamoDB counts for one attribute value in wire form ({"S": "..."}, {"M": {...}}, ...)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return utf8_len(inner)
    if kind == "N":
        return number_size(inner)
    if kind == "B":
        return base64_len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + len(inner) + item_size(inner)
    if kind == "L":
        size = 3 + len(inner)
        for element in inner:
            size += value_size(element)
        return size
    if kind == "SS":
        return sum(utf8_len(s) for s in inner)
    if kind == "NS":
        return sum(number_size(n) for n in inner)
    if kind == "BS":
        return sum(base64_len(b) for b in inner)
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes DynamoDB counts for an item: names and values."""
    size = 0
    for name, value in item.items():  # a loop, not sum(generator): the capacity proxy runs it per item
        size += utf8_len(name) + value_size(value)
    return size


def write_units(size: int) -> int:
    """1 WCU per started KB; every write costs at least 1."""
    return max(1, math.ceil(size / KB))


# --- the canonical form and the digest -----------------------------------------------------------
#
# The digest must not depend on how an item happens to be spelled. What carve sends is wire JSON
# (binary as base64 text, numbers as carve formatted them, sets in carve's order); what a Scan
# returns through boto3's low-level client has binary as bytes, numbers normalized by DynamoDB
# ("1.50" comes back "1.5") and sets in any order. `canonical` maps both spellings of the same
# item to one value.


def canonical_number(text: str) -> str:
    """The one spelling of a DynamoDB number: no leading or trailing zeros, no -0.

    Built from the decimal digits directly, never through a float or a Decimal context, so all
    38 significant digits DynamoDB keeps are compared exactly.
    """
    value = Decimal(text)  # parsing a string is exact whatever the context precision
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a DynamoDB number")
    sign, digits, exponent = value.as_tuple()
    significant = list(digits)
    while len(significant) > 1 and significant[0] == 0:
        significant.pop(0)
    if significant == [0]:
        return "0"
    while significant[-1] == 0:
        significant.pop()
        exponent += 1
    return str(Decimal((sign, tuple(significant), exponent)))


def canonical_binary(value: bytes | bytearray | str) -> str:
    """Base64 of the raw bytes: the wire JSON holds base64 text, boto3 hands back bytes."""
    raw = base64.b64decode(value, validate=True) if isinstance(value, str) else bytes(value)
    return base64.b64encode(raw).decode("ascii")


def canonical_value(value: Mapping[str, Any]) -> dict[str, Any]:
    """One AttributeValue ({"S": ...}, {"M": {...}}, ...) in canonical form."""
    if len(value) != 1:
        raise ValueError(f"an AttributeValue has exactly one type, got {sorted(value)}")
    ((kind, inner),) = value.items()
    if kind in ("S", "BOOL", "NULL"):
        return {kind: inner}
    if kind == "N":
        return {"N": canonical_number(inner)}
    if kind == "B":
        return {"B": canonical_binary(inner)}
    if kind == "SS":
        return {"SS": sorted(inner)}
    if kind == "NS":
        return {"NS": sorted(canonical_number(n) for n in inner)}
    if kind == "BS":
        return {"BS": sorted(canonical_binary(b) for b in inner)}
    if kind == "L":
        return {"L": [canonical_value(v) for v in inner]}
    if kind == "M":
        return {"M": canonical(inner)}
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def canonical(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The item with every value canonical; key order is settled when the digest serializes it."""
    return {name: canonical_value(value) for name, value in item.items()}


def item_digest(item: Mapping[str, Mapping[str, Any]]) -> str:
    """sha256 hex of the canonical item: equal for every spelling of the same DynamoDB item."""
    text = json.dumps(canonical(item), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def key_text(value: Mapping[str, Any]) -> str:
    """A key attribute's value as the items DataFrame spells it in its pk/sk columns."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return canonical_binary(inner)
    return inner  # S and N: DynamoDB returns them as sent (N keys are stored normalized upstream)
