"""JSON patch generation: applying the patch to the original gives the mutated document."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tfcore.admission.patch import apply_patch, escape, json_patch

_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet="ab/~c", max_size=4), inner, max_size=4)
    ),
    max_leaves=15,
)
_object = st.dictionaries(st.text(alphabet="ab/~c", max_size=4), _json, max_size=4)


@given(_object, _object)
def test_patch_round_trips(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert apply_patch(before, json_patch(before, after)) == after


def test_equal_documents_give_no_patch() -> None:
    assert json_patch({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}) == []


def test_keys_are_escaped() -> None:
    assert escape("tensor-fusion.ai/x~y") == "tensor-fusion.ai~1x~0y"
    patch = json_patch({"m": {}}, {"m": {"a/b": "1"}})
    assert patch == [{"op": "add", "path": "/m/a~1b", "value": "1"}]


def test_type_changes_replace() -> None:
    assert json_patch({"a": 1}, {"a": True}) == [{"op": "replace", "path": "/a", "value": True}]
