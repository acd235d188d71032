"""The HTML page every report shares: one self-contained file, offline, printable.

No request leaves the file: styles are inline, pictures inline SVG, no script
runs. The numbers a report shows are also in a JSON data block
(``<script type="application/json" id="wearflow-data">``) so a script or a test
can read them back and check them against the stored tables.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import cache
from typing import Any

import jinja2

REPORT_FORMAT = "wearflow-report/1"


@cache
def environment() -> jinja2.Environment:
    """The templates' environment: HTML escaped; a value a result does not have (an older
    result, another solution) renders as nothing, or ``-`` through ``fmt``."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("wearflow.reports", "templates"),
        autoescape=True, undefined=jinja2.ChainableUndefined, trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["fmt"] = fmt
    return env


def render(template: str, **context: Any) -> str:
    """Render a report template; ``data`` (a mapping) becomes the page's data block."""
    data = context.get("data", {})
    return environment().get_template(template).render(
        data_json=data_block(data), report_format=REPORT_FORMAT, **context)


def fmt(value: Any, digits: int = 1, unit: str = "") -> str:
    """A number for a person: fixed decimals, ``-`` for a missing value."""
    if value is None or isinstance(value, jinja2.Undefined) or (
            isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        text = f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,d}"
        return f"{text} {unit}".rstrip()
    return str(value)


def clean(value: Any) -> Any:
    """A value as JSON can hold it: NaN -> None, numpy scalars -> Python."""
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def data_block(data: Mapping[str, Any]) -> str:
    """The JSON data block's text, safe inside ``<script>`` (``</`` escaped)."""
    text = json.dumps(clean(data), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/")
