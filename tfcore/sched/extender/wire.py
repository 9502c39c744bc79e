"""The kube-scheduler extender wire types (k8s.io/kube-scheduler/extender/v1), as msgspec Structs.

The Go types carry no JSON tags, so kube-scheduler sends and expects the Go field names
("Pod", "NodeNames", "FailedNodes", "PodUID"...). Scores are 0..10 (MaxExtenderPriority);
kube-scheduler multiplies them by the extender weight and by 10.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from tfcore.model.body import decode_json

MAX_EXTENDER_PRIORITY: Final = 10


class ExtenderArgs(msgspec.Struct, rename="pascal"):
    """Body of the filter and prioritize calls. NodeNames when nodeCacheCapable, else Nodes."""

    pod: dict[str, Any] | None = None
    nodes: dict[str, Any] | None = None
    node_names: list[str] | None = None

    def candidate_names(self) -> list[str]:
        if self.node_names is not None:
            return self.node_names
        items = (self.nodes or {}).get("items") or []
        return [str((n.get("metadata") or {}).get("name", "")) for n in items if isinstance(n, dict)]


class ExtenderFilterResult(msgspec.Struct, rename="pascal", omit_defaults=True):
    nodes: dict[str, Any] | None = None
    node_names: list[str] | None = None
    failed_nodes: dict[str, str] = msgspec.field(default_factory=dict)
    failed_and_unresolvable_nodes: dict[str, str] = msgspec.field(default_factory=dict)
    error: str = ""


class HostPriority(msgspec.Struct, rename="pascal"):
    host: str
    score: int


class ExtenderBindingArgs(msgspec.Struct, rename="pascal"):
    pod_name: str
    pod_namespace: str
    node: str
    pod_uid: str = msgspec.field(default="", name="PodUID")


class ExtenderBindingResult(msgspec.Struct, rename="pascal", omit_defaults=True):
    error: str = ""


NULL: Final = msgspec.Raw(b"null")


class EncodedExtenderArgs(msgspec.Struct, rename="pascal"):
    """ExtenderArgs with Nodes and NodeNames left as JSON. kube-scheduler sends the same node names
    pod after pod: comparing those bytes is all a reused reply needs, so they are decoded only
    when it cannot be reused."""

    pod: dict[str, Any] | None = None
    nodes: msgspec.Raw = NULL
    node_names: msgspec.Raw = NULL

    def names_json(self) -> bytes | None:
        encoded = bytes(self.node_names)
        return None if encoded == b"null" else encoded

    def decoded(self) -> ExtenderArgs:
        """ValidationError (a 400) if Nodes or NodeNames is not what kube-scheduler sends."""
        decode_json(bytes(self.nodes), _node_list_shape, where="body.Nodes", expected=_NODE_LIST)
        nodes = decode_json(bytes(self.nodes), _nodes_decoder, where="body.Nodes", expected=_NODE_LIST)
        names = decode_json(bytes(self.node_names), _names_decoder, where="body.NodeNames", expected=_NAMES)
        return ExtenderArgs(self.pod, nodes, names)


class _NodeMetadata(msgspec.Struct):
    name: str = ""


class _Node(msgspec.Struct):
    metadata: _NodeMetadata | None = None


class _NodeList(msgspec.Struct):
    """Only the shape the extender reads: items, each an object whose metadata.name is a string."""

    items: list[_Node] | None = None


_NODE_LIST: Final = "a NodeList (items: a list of Node objects) or null"
_NAMES: Final = "a list of node names or null"
_node_list_shape: Final = msgspec.json.Decoder(_NodeList | None)


_nodes_decoder: Final = msgspec.json.Decoder(dict[str, Any] | None)
_names_decoder: Final = msgspec.json.Decoder(list[str] | None)
args_decoder: Final = msgspec.json.Decoder(ExtenderArgs)
encoded_args_decoder: Final = msgspec.json.Decoder(EncodedExtenderArgs)
binding_decoder: Final = msgspec.json.Decoder(ExtenderBindingArgs)
encoder: Final = msgspec.json.Encoder()
