"""`--set KEY=VALUE` for the benchmarks: a value is read as JSON when it parses (numbers, lists, booleans), else kept as
a string (e.g. train.precision=bf16)."""

from __future__ import annotations

import json
from typing import Any


def parse_sets(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: --set {item!r} is not KEY=VALUE, e.g. --set train.precision=bf16")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
