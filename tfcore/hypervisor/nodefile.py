"""STATE_DIR/node.json: where local clients (`run`, the demo) find the node API and what a
worker's environment needs. Written by the hypervisor at start, removed at stop."""

from __future__ import annotations

from typing import Final

import msgspec

from tfcore.model.errors import ValidationError

NODE_FILE: Final = "node.json"


class NodeFile(msgspec.Struct, frozen=True, kw_only=True):
    url: str  # the node API, e.g. http://127.0.0.1:7311
    pid: int  # the hypervisor's process
    simulated: bool  # the GPUs are the simulator's
    shim: str  # libtfshim.so to LD_PRELOAD into workers
    library_path: str = ""  # the simulated libcuda's directory (simulated nodes only)
    sim_state: str = ""  # TF_SIM_STATE workers must share with the node (simulated nodes only)


def encode_node_file(info: NodeFile) -> bytes:
    return msgspec.json.encode(info)


def decode_node_file(data: bytes) -> NodeFile:
    """ValidationError naming the field when the file is not a node file."""
    try:
        return msgspec.json.decode(data, type=NodeFile)
    except msgspec.ValidationError as exc:
        raise ValidationError.single(NODE_FILE, str(exc), "the JSON the hypervisor writes") from None
    except msgspec.DecodeError as exc:
        raise ValidationError.single(NODE_FILE, f"not JSON: {exc}", "the JSON the hypervisor writes") from None
