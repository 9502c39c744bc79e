"""node.json: typed both ways, and a bad file is reported by name."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfcore.hypervisor.nodefile import NodeFile, decode_node_file, encode_node_file
from tfcore.model.errors import ValidationError


def test_round_trip_and_defaults() -> None:
    info = NodeFile(url="http://127.0.0.1:7311", pid=42, simulated=True, shim="/lib/libtfshim.so", sim_state="/s")
    assert decode_node_file(encode_node_file(info)) == info
    old = b'{"url": "http://h:1", "pid": 1, "simulated": false, "shim": "/x"}'
    assert decode_node_file(old).library_path == ""


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b'{"url": 1}', b'{"url": "u", "pid": "x"}'])
def test_a_bad_file_names_node_json(data: bytes) -> None:
    with pytest.raises(ValidationError, match=r"node\.json"):
        decode_node_file(data)


@given(st.binary(max_size=64))
def test_never_anything_but_a_node_file_or_a_validation_error(data: bytes) -> None:
    try:
        decoded = decode_node_file(data)
    except ValidationError:
        return
    assert isinstance(decoded, NodeFile)
