"""The AdmissionReview parser: every malformed body is a ValidationError naming the field."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.admission.pods import review_document, tf_pod
from tfcore.admission import Verdict, encode_response, parse_review
from tfcore.admission.review import MAX_BODY_BYTES
from tfcore.model.errors import ValidationError


def _with(path: list[str], value: Any) -> bytes:
    document = review_document(tf_pod())
    target = document
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(document).encode()


_DELETE = object()

BAD_BODIES: list[tuple[bytes, str]] = [
    (b"", "body"),
    (b"{not json", "body"),
    (b"[]", "body"),
    (b'"review"', "body"),
    (_with(["apiVersion"], "admission.k8s.io/v1beta1"), "apiVersion"),
    (_with(["kind"], "Pod"), "kind"),
    (_with(["request"], _DELETE), "request"),
    (_with(["request"], "x"), "request"),
    (_with(["request", "uid"], 7), "request.uid"),
    (_with(["request", "uid"], ""), "request.uid"),
    (_with(["request", "operation"], "PATCH"), "request.operation"),
    (_with(["request", "kind"], {"group": "apps", "version": "v1", "kind": "Deployment"}), "request.kind"),
    (_with(["request", "namespace"], 3), "request.namespace"),
    (_with(["request", "object"], _DELETE), "request.object"),
    (_with(["request", "object"], []), "request.object"),
    (_with(["request", "object", "metadata"], "m"), "request.object.metadata"),
    (_with(["request", "object", "metadata", "labels"], {"a": 1}), "request.object.metadata.labels"),
    (_with(["request", "object", "spec"], []), "request.object.spec"),
    (_with(["request", "object", "spec", "containers"], {"name": "x"}), "request.object.spec.containers"),
    (_with(["request", "object", "spec", "volumes"], ["v"]), "request.object.spec.volumes"),
    (_with(["request", "dryRun"], "yes"), "request.dryRun"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_bad_bodies_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_review(body)
    assert field in {p.field for p in caught.value.problems}
    assert all(p.expected for p in caught.value.problems)


def test_bad_container_fields_are_named() -> None:
    pod = tf_pod()
    pod["spec"]["containers"][0]["env"] = "PATH=/bin"
    pod["spec"]["containers"][0]["resources"] = {"limits": ["x"]}
    with pytest.raises(ValidationError) as caught:
        parse_review(json.dumps(review_document(pod)).encode())
    fields = {p.field for p in caught.value.problems}
    assert fields == {"request.object.spec.containers[0].env", "request.object.spec.containers[0].resources.limits"}


def test_oversized_bodies_are_rejected_before_decoding() -> None:
    with pytest.raises(ValidationError, match="too large"):
        parse_review(b" " * (MAX_BODY_BYTES + 1))


def test_a_good_review_parses() -> None:
    review = parse_review(json.dumps(review_document(tf_pod(), uid="abc")).encode())
    assert (review.uid, review.operation, review.namespace) == ("abc", "CREATE", "default")


def test_delete_reviews_need_no_object() -> None:
    document = review_document(tf_pod(), operation="DELETE")
    del document["request"]["object"]
    assert parse_review(json.dumps(document).encode()).pod == {}


def test_responses_carry_the_uid_and_a_base64_json_patch() -> None:
    patch = [{"op": "add", "path": "/spec/schedulerName", "value": "tensor-fusion-scheduler"}]
    answer = json.loads(encode_response("u-1", Verdict.allow(patch, ("careful",))))
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == "u-1"
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"])) == patch
    assert response["warnings"] == ["careful"]


def test_denials_carry_a_status_and_no_patch() -> None:
    response = json.loads(encode_response("u-2", Verdict.deny("tensor-fusion: bad")))["response"]
    assert response == {
        "uid": "u-2",
        "allowed": False,
        "status": {"code": 403, "message": "tensor-fusion: bad", "reason": "Forbidden"},
    }


def test_allow_without_patch_has_no_patch_fields() -> None:
    response = json.loads(encode_response("u-3", Verdict.allow()))["response"]
    assert response == {"uid": "u-3", "allowed": True}


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_keys = st.sampled_from(
    ["apiVersion", "kind", "request", "uid", "operation", "object", "metadata", "spec", "labels", "containers", "env"]
)


def _mutations(document: Any) -> st.SearchStrategy[Any]:
    """The valid review with one nested value swapped for arbitrary JSON."""

    def swap(path: list[str], value: Any) -> Any:
        doc = json.loads(json.dumps(document))
        target = doc
        for key in path[:-1]:
            if not isinstance(target, dict) or key not in target:
                return doc
            target = target[key]
        if isinstance(target, dict):
            target[path[-1]] = value
        return doc

    return st.builds(swap, st.lists(_keys, min_size=1, max_size=5), _json)


@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes_only_raise_validation_errors(body: bytes) -> None:
    with contextlib.suppress(ValidationError):
        parse_review(body)


@given(_mutations(review_document(tf_pod())))
def test_fuzz_mangled_reviews_only_raise_validation_errors(document: Any) -> None:
    try:
        review = parse_review(json.dumps(document).encode())
    except ValidationError as exc:
        problems = exc.problems
    else:
        assert review.uid
        return
    assert all(p.field and p.expected for p in problems)
