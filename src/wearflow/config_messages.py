"""What is wrong with a study file, in one line a person can act on.

Validation errors name every offending key, suggest the key meant for an unknown one
(within its section: ``time_zon`` -> ``time_zone``, ``files.side`` -> ``sides``);
YAML errors name the line the parser stopped at, what it expected and where the
construct began (often the line to fix).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

import yaml
from pydantic import BaseModel, ValidationError

from wearflow.errors import one_line


def validation_message(exc: ValidationError,
                       sections: Mapping[tuple[str, ...], type[BaseModel]],
                       top: type[BaseModel]) -> str:
    """Every error of ``exc`` as ``key: what``; ``sections`` maps a key path (list indexes
    left out) to the model of that section, ``top`` is the file's own model."""
    parts = []
    for err in exc.errors():
        key = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            model = sections.get(tuple(p for p in err["loc"][:-1] if isinstance(p, str)), top)
            msg = "unknown key" + _did_you_mean(str(err["loc"][-1]) if err["loc"] else "",
                                                model)
        parts.append(f"{key}: {msg}")
    return one_line("; ".join(parts), limit=1000)


def _did_you_mean(key: str, model: type[BaseModel]) -> str:
    """``; did you mean time_zone?`` for an unknown key close to one ``model`` takes."""
    known = [field.alias or name for name, field in model.model_fields.items()
             if name != "source"]  # a key as the file writes it (``from``, not ``sender``)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.7) if key else []
    return f"; did you mean {close[0]}?" if close else ""


def yaml_message(exc: yaml.YAMLError) -> str:
    """``not valid YAML at line 6: expected ',' or ']' (a flow sequence started at line
    5)``."""
    where = getattr(exc, "problem_mark", None)
    text = "not valid YAML" + (f" at line {where.line + 1}" if where is not None else "")
    problem = getattr(exc, "problem", None)
    if problem:
        text += f": {problem}"
    context, began = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and began is not None and (where is None or began.line != where.line):
        text += f" ({context.removeprefix('while parsing ')} started at line {began.line + 1})"
    return one_line(text)
