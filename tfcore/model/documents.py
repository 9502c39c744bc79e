"""Multi-document YAML (or a `kubectl get -o yaml` List) of tensor-fusion.ai/v1 objects."""

from __future__ import annotations

from typing import Any

import yaml

from tfcore.model.errors import Problem, ValidationError
from tfcore.model.kinds import decode_object


def load_documents(text: str, *, where: str = "document") -> list[Any]:
    """Decode every object in `text`; raise one ValidationError listing all bad documents."""
    try:
        raw = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise ValidationError.single(where, f"not valid YAML: {exc}", "YAML documents separated by ---") from None
    objects: list[Any] = []
    problems: list[Problem] = []
    for index, data in enumerate(_flatten(raw)):
        try:
            objects.append(decode_object(data, where=f"{where}[{index}]"))
        except ValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ValidationError(problems)
    return objects


def _flatten(documents: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for doc in documents:
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            flat.extend(doc["items"])
        else:
            flat.append(doc)
    return flat
