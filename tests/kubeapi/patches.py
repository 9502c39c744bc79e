"""Patch formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902), and strategic merge patch.

Strategic merge is the built-in kinds' format: maps merge, lists named in `MERGE_KEYS` merge
element-wise by that key, `finalizers` merges as a set, other lists are replaced; the
`$patch: replace|delete` and `$deleteFromPrimitiveList/<field>` directives are honoured and
`$setElementOrder/<field>` / `$retainKeys` are accepted and ignored. The field-name table stands
in for the Go struct tags the real server reads.
"""

from __future__ import annotations

import copy
from typing import Any

Json = dict[str, Any]


class PatchError(ValueError):
    """A patch that cannot be applied (the server's 422); `malformed` marks the 400 kind."""

    def __init__(self, message: str, malformed: bool = False) -> None:
        super().__init__(message)
        self.malformed = malformed


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}: must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r}")
    index = int(token)
    if index > len(container) or (index == len(container) and not allow_end):
        raise PatchError(f"array index {index} out of bounds")
    return index


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, False)]
        else:
            raise PatchError(f"path {path!r} does not exist")
    return node


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path {path!r} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, False)]
    raise PatchError(f"path {path!r} does not exist")


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, tokens[-1], True), value)
    else:
        raise PatchError(f"path {path!r} does not exist")
    return doc


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    if isinstance(parent, dict):
        if tokens[-1] not in parent:
            raise PatchError(f"unable to remove nonexistent key {tokens[-1]!r} at {path!r}")
        del parent[tokens[-1]]
    elif isinstance(parent, list):
        del parent[_index(parent, tokens[-1], False)]
    else:
        raise PatchError(f"path {path!r} does not exist")
    return doc


def json_patch(target: Json, operations: Any) -> Json:
    if not isinstance(operations, list):
        kind = type(operations).__name__.replace("dict", "object")
        raise PatchError(f"json: cannot unmarshal {kind} into Go value of type jsonpatch.Patch", malformed=True)
    doc: Any = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation {op!r}: needs 'op' and 'path'", malformed=True)
        name, path = op["op"], op["path"]
        if not isinstance(path, str):
            raise PatchError(f"invalid JSON patch path {path!r}: must be a string", malformed=True)
        if name in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"JSON patch {name} at {path!r} needs a 'value'", malformed=True)
        if name == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif name == "remove":
            doc = _remove(doc, path)
        elif name == "replace":
            _get(doc, path)
            doc = _add(_remove(doc, path), path, copy.deepcopy(op["value"])) if _pointer(path) else op["value"]
        elif name in ("move", "copy"):
            if not isinstance(op.get("from"), str):
                raise PatchError(f"JSON patch {name} to {path!r} needs a 'from' path", malformed=True)
            value = copy.deepcopy(_get(doc, op["from"]))
            if name == "move":
                doc = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif name == "test":
            if _get(doc, path) != op["value"]:
                raise PatchError(f"testing value {path} failed")
        else:
            raise PatchError(f"unknown JSON patch operation {name!r}", malformed=True)
    if not isinstance(doc, dict):
        raise PatchError("a JSON patch must leave an object")
    result: Json = doc
    return result


MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "addresses": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "readinessGates": "conditionType",
}
PRIMITIVE_MERGE = frozenset({"finalizers"})


def _ports_key(items: list[Any]) -> str:
    # Container ports merge on containerPort, Service ports on port.
    return "containerPort" if any(isinstance(i, dict) and "containerPort" in i for i in items) else "port"


def _merge_key(name: str, original: list[Any], patch: list[Any]) -> str | None:
    if name == "ports":
        return _ports_key(original + patch)
    return MERGE_KEYS.get(name)


def _merge_list(name: str, original: list[Any], patch: list[Any], deletions: list[Any]) -> list[Any]:
    if name in PRIMITIVE_MERGE:
        merged = [v for v in original if v not in deletions]
        merged += [v for v in patch if v not in merged]
        return merged
    key = _merge_key(name, original, patch)
    if key is None or not all(isinstance(i, dict) for i in patch):
        return copy.deepcopy(patch)
    if any(i.get("$patch") == "replace" for i in patch):
        return [
            copy.deepcopy({k: v for k, v in i.items() if k != "$patch"}) for i in patch if i.get("$patch") != "replace"
        ]
    merged = copy.deepcopy(original)
    for item in patch:
        if key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {key}")
        position = next((n for n, o in enumerate(merged) if isinstance(o, dict) and o.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if position is not None:
                del merged[position]
        elif position is None:
            merged.append(strategic_merge({}, item))
        else:
            merged[position] = strategic_merge(merged[position], item)
    return merged


def strategic_merge(original: Json, patch: Json) -> Json:
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return {}
    result = copy.deepcopy(original)
    deletions = {k.split("/", 1)[1]: v for k, v in patch.items() if k.startswith("$deleteFromPrimitiveList/")}
    for field, values in deletions.items():
        if field not in patch and isinstance(result.get(field), list):
            result[field] = [v for v in result[field] if v not in values]
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        current = result.get(key)
        if value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(current, dict):
            result[key] = strategic_merge(current, value)
        elif isinstance(value, dict):
            result[key] = strategic_merge({}, value)
        elif isinstance(value, list) and isinstance(current, list):
            result[key] = _merge_list(key, current, value, deletions.get(key, []))
        elif isinstance(value, list):
            result[key] = _merge_list(key, [], value, [])
        else:
            result[key] = copy.deepcopy(value)
    return result
