"""RFC 6902 JSON Patch between two JSON documents.

Objects are diffed key by key; a changed list is replaced whole. That keeps patches small
where it matters (a label, one container's env) without list-diff ambiguity, and applying
the patch to the original always gives exactly the mutated document.
"""

from __future__ import annotations

import copy
from typing import Any

Operation = dict[str, Any]


def json_patch(before: Any, after: Any) -> list[Operation]:
    operations: list[Operation] = []
    _diff(before, after, "", operations)
    return operations


def escape(key: str) -> str:
    """A JSON Pointer reference token (RFC 6901): '~' -> '~0', '/' -> '~1'."""
    return key.replace("~", "~0").replace("/", "~1")


def _diff(before: Any, after: Any, path: str, out: list[Operation]) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        for key in before:
            if key not in after:
                out.append({"op": "remove", "path": f"{path}/{escape(key)}"})
        for key, value in after.items():
            child = f"{path}/{escape(key)}"
            if key not in before:
                out.append({"op": "add", "path": child, "value": value})
            else:
                _diff(before[key], value, child, out)
        return
    if type(before) is not type(after) or before != after:
        # The root of a JSON Patch cannot be removed, only replaced; everything else exists here.
        out.append({"op": "replace", "path": path, "value": after})


def apply_patch(document: Any, operations: list[Operation]) -> Any:
    """Apply add/remove/replace operations (what json_patch emits) to a copy; for tests and tools."""
    result = copy.deepcopy(document)
    for operation in operations:
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in operation["path"].split("/")[1:]]
        if not tokens:
            result = copy.deepcopy(operation["value"])
            continue
        parent = result
        for token in tokens[:-1]:
            parent = parent[int(token)] if isinstance(parent, list) else parent[token]
        last = tokens[-1]
        if operation["op"] == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        elif isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if operation["op"] == "add":
                parent.insert(index, copy.deepcopy(operation["value"]))
            else:
                parent[index] = copy.deepcopy(operation["value"])
        else:
            if operation["op"] == "replace" and last not in parent:
                raise KeyError(f"replace of missing member {operation['path']}")
            parent[last] = copy.deepcopy(operation["value"])
    return result
