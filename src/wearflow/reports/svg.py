"""Small, deterministic SVG pieces for the reports: no plotting library, no randomness.

Coordinates are printed with at most one decimal, so the same data gives the
same bytes on every machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

__all__ = ["attrs", "escape", "line", "num", "polyline", "rect", "runs", "svg", "text"]
from typing import Any

import numpy as np


def num(value: float) -> str:
    """A coordinate with at most one decimal, without a trailing ``.0``."""
    text = f"{round(float(value), 1):.1f}"
    return text[:-2] if text.endswith(".0") else text


def attrs(**values: Any) -> str:
    """``key="value"`` pairs, escaped; ``data_x`` becomes ``data-x``; None left out."""
    parts = []
    for key, value in values.items():
        if value is None:
            continue
        name = key.rstrip("_").replace("_", "-")
        text = num(value) if isinstance(value, float) else str(value)
        parts.append(f'{name}="{escape(text, quote=True)}"')
    return " ".join(parts)


def rect(x: float, y: float, w: float, h: float, **extra: Any) -> str:
    return f"<rect {attrs(x=float(x), y=float(y), width=float(w), height=float(h), **extra)}/>"


def text(x: float, y: float, content: str, **extra: Any) -> str:
    return f"<text {attrs(x=float(x), y=float(y), **extra)}>{escape(content)}</text>"


def line(x1: float, y1: float, x2: float, y2: float, **extra: Any) -> str:
    return (f"<line {attrs(x1=float(x1), y1=float(y1), x2=float(x2), y2=float(y2), **extra)}"
            "/>")


def polyline(xs: Sequence[float], ys: Sequence[float], **extra: Any) -> str:
    """One path through the points; a NaN y breaks the line (no value there)."""
    parts: list[str] = []
    pen_down = False
    for x, y in zip(xs, ys, strict=True):
        if y != y:  # NaN
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{num(x)} {num(y)}")
        pen_down = True
    if not parts:
        return ""
    return f"<path {attrs(d=''.join(parts), fill='none', **extra)}/>"


def runs(values: np.ndarray[Any, Any]) -> Iterable[tuple[int, int, Any]]:
    """Runs of equal values: (start index, end index exclusive, value), in order."""
    n = values.shape[0]
    if n == 0:
        return
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [n]))
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        yield s, e, values[s]


def svg(width: float, height: float, body: Iterable[str], *, fit: bool = True,
        **extra: Any) -> str:
    """An ``<svg>`` element scaled to its container's width (``fit``), or drawn at its own
    size in CSS pixels (no wider than its container)."""
    size = {"width": "100%"} if fit else {"width": num(width), "style": "max-width:100%"}
    head = attrs(viewBox=f"0 0 {num(width)} {num(height)}", **size,
                 role="img", preserveAspectRatio="xMinYMin meet", **extra)
    return f"<svg {head}>" + "".join(body) + "</svg>"
