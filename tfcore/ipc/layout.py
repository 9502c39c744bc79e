"""Pure-Python description of the region layout in ext/include/tf/shm_layout.h.

A region is two files: PATH.limits (header + LIMIT per device) and PATH (header + USAGE per
device + PROC slots + SHARED entries: memory exported by one process of the worker and imported
by others, charged once).

Lets tools read a region without the native binding, and lets a test prove that Python and
C agree byte for byte (tests/native/test_layout.py compares it with offsetof/sizeof).
Fields are little-endian with C's natural alignment made explicit by reserved fields, so
the standard-size struct formats below have no implicit padding.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = 0x4D485354  # bytes "TSHM"
VERSION_MAJOR = 4
VERSION_MINOR = 0
MAX_DEVICES = 16
MAX_PROCS = 64
MAX_SHARED = 256
UUID_LEN = 48
KIND_LIMITS = 1
KIND_STATE = 2
LIMITS_SUFFIX = ".limits"  # PATH.limits beside the state file PATH


@dataclass(frozen=True)
class StructLayout:
    """A C struct as (field name, struct format) pairs in declaration order."""

    name: str
    fields: tuple[tuple[str, str], ...]

    @property
    def format(self) -> str:
        return "<" + "".join(fmt for _, fmt in self.fields)

    @property
    def size(self) -> int:
        return struct.calcsize(self.format)

    def offsets(self) -> dict[str, tuple[int, int]]:
        """field -> (offset, size)."""
        out: dict[str, tuple[int, int]] = {}
        offset = 0
        for name, fmt in self.fields:
            size = struct.calcsize("<" + fmt)
            out[name] = (offset, size)
            offset += size
        return out


HEADER = StructLayout(
    "tf_shm_header",
    (
        ("magic", "I"),
        ("version_major", "H"),
        ("version_minor", "H"),
        ("total_size", "Q"),
        ("device_count", "I"),
        ("max_devices", "I"),
        ("max_procs", "I"),
        ("kind", "I"),
        ("generation", "Q"),
        ("tier_flags", "I"),
        ("tier_request", "I"),
        ("tier_request_seq", "Q"),
        ("shared_high_water", "I"),
        ("reserved1", "4s"),
    ),
)

LIMIT = StructLayout(
    "tf_shm_limit",
    (
        ("uuid", f"{UUID_LEN}s"),
        ("vram_limit_bytes", "Q"),
        ("tflops_request_milli", "Q"),
        ("tflops_limit_milli", "Q"),
        ("compute_rate", "Q"),
        ("compute_burst", "Q"),
        ("compute_account", "Q"),
        ("compute_account_ns", "Q"),
        ("compute_ceiling", "Q"),
        ("compute_seen_consumed", "Q"),
        ("reserved", "8s"),
    ),
)

USAGE = StructLayout(
    "tf_shm_usage",
    (
        ("unslotted_bytes", "Q"),
        ("compute_consumed", "Q"),
        ("compute_granted", "Q"),
        ("compute_refill_ns", "Q"),
        ("compute_launches", "Q"),
        ("compute_throttled", "Q"),
        ("compute_waited_ns", "Q"),
        ("compute_futex", "I"),
        ("reserved", "I"),
    ),
)

PROC = StructLayout(
    "tf_shm_proc",
    (
        ("pid", "i"),
        ("reserved0", "I"),
        ("heartbeat_ns", "Q"),
        ("used_bytes", f"{MAX_DEVICES}Q"),
        ("tier_host_bytes", "Q"),
        ("tier_disk_bytes", "Q"),
        ("tier_pinned_bytes", "Q"),
        ("tier_freezes", "I"),
        ("tier_resumes", "I"),
        ("tier_ack_seq", "I"),
        ("tier_where", "H"),
        ("tier_result", "H"),
        ("reserved1", "8s"),
    ),
)

SHARED = StructLayout(
    "tf_shm_shared",
    (
        ("key", "Q"),
        ("holders", "Q"),
        ("bytes", "Q"),
        ("device", "I"),
        ("generation", "I"),
        ("reserved", "32s"),
    ),
)

STRUCTS = (HEADER, LIMIT, USAGE, PROC, SHARED)
LIMITS_SIZE = HEADER.size + MAX_DEVICES * LIMIT.size
USAGE_OFFSET = HEADER.size
PROCS_OFFSET = USAGE_OFFSET + MAX_DEVICES * USAGE.size
SHARED_OFFSET = PROCS_OFFSET + MAX_PROCS * PROC.size
STATE_SIZE = SHARED_OFFSET + MAX_SHARED * SHARED.size
