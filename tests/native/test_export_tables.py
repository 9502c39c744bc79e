"""The private driver tables the CUDA runtime fetches with cuGetExportTable, called by a C
program the way libcudart calls them.  The integrity hash is checked against an independent
HMAC-MD2 (RFC 1319 / RFC 2104) written here; that the runtime itself accepts it is shown by
every runtime program in test_runtime.py (a wrong hash makes cudart answer 103)."""

from __future__ import annotations

import hmac
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import parse_kv, run, sim_env

pytestmark = pytest.mark.simulator_only

MD2_SBOX = bytes.fromhex(
    "292e43c9a2d87c013d3654a1ecf0061362a705f3c0c7738c98932bd9bc4c82ca1e9b573cfdd4e01667426f188a17e512"
    "be4ec4d6da9ede49a0fbf58ebb2fee7aa968799115b2073f94c210890b225f21807f5d9a5a903227353ecce7bff79703"
    "ff1930b348a5b5d1d75e922aac56aac64fb838d296a47db676fc6be29c7404f1459d705964718720865bcf65e62da802"
    "1b6025adaeb0b9f61c46616934407e0f5547a323dd51af3ac35cf9cebac5ea262c530d6e85288409d3dfcdf441814d52"
    "6adc37c86cc1abfa24e17b080cbdb14a7888958be363e86de9cbd5fe3b001d39f2efb70e6658d0e4a67772f8eb754b0a"
    "3144 50b48fed1f1adb998d339f118314".replace(" ", "")
)


def md2(data: bytes) -> bytes:
    """MD2 as RFC 1319 specifies it."""
    pad = 16 - len(data) % 16
    data += bytes([pad]) * pad
    checksum, last = bytearray(16), 0
    for block in range(0, len(data), 16):
        for j in range(16):
            checksum[j] ^= MD2_SBOX[data[block + j] ^ last]
            last = checksum[j]
    data += bytes(checksum)
    x = bytearray(48)
    for block in range(0, len(data), 16):
        for j in range(16):
            x[16 + j] = data[block + j]
            x[32 + j] = x[16 + j] ^ x[j]
        t = 0
        for round_ in range(18):
            for k in range(48):
                x[k] ^= MD2_SBOX[t]
                t = x[k]
            t = (t + round_) % 256
    return bytes(x[:16])


class Md2:
    """hashlib-style wrapper so the standard library's hmac can key it."""

    digest_size = 16
    block_size = 16

    def __init__(self, data: bytes = b"") -> None:
        self._data = data

    def update(self, data: bytes) -> None:
        self._data += data

    def copy(self) -> Md2:
        return Md2(self._data)

    def digest(self) -> bytes:
        return md2(self._data)


INTEGRITY_KEY = bytes.fromhex("146addae53a9a752aa0841360bf55a9f")


def test_md2_matches_the_rfc_1319_test_suite() -> None:
    assert md2(b"").hex() == "8350e5a3e24c153df2275c9f80692773"
    assert md2(b"abc").hex() == "da853b0d3f88d99b30283a69e6ded6bb"
    assert md2(b"12345678901234567890" * 4).hex() == "d5976f79d83d3a0dc9806c3c66f3efd8"


@pytest.fixture(scope="module")
def tables(cc: Callable[..., Path]) -> Path:
    return cc("tables", "tables.c", flags=("-ldl", "-lpthread"))


def test_the_runtime_tables_behave_as_cudart_relies_on(libs: dict[str, Path], tables: Path) -> None:
    done = run([str(tables)], sim_env(libs))
    assert done.returncode == 0, done.stdout + done.stderr
    out = parse_kv(done.stdout)
    assert (out["null_table"], out["null_uuid"]) == ("1", "1")  # CUDA_ERROR_INVALID_VALUE
    assert out["unknown"] == "801,1"  # CUDA_ERROR_NOT_SUPPORTED, no table handed out
    assert out["sizes"] == "104,56,32,32,24"  # slot 0: the table's size in bytes
    # context-local storage: NULL = current context, a missing key is INVALID_HANDLE
    assert out["cls_put_get"] == "0,0,1"
    assert out["cls_get_null"] == "1"
    assert out["cls_get_missing"] == "400"
    assert out["cls_delete"] == "0,400"
    assert out["cls_reset"] == "0,1,1,1"  # the destructor ran once, with its context, key and value
    assert out["cls_after_reset"] == "400"
    assert out["cls_destroy"] == "0,2,1"
    assert out["rt_primary"] == "0,1"
    assert out["rt_primary_null"] == "1"
    assert out["rt_primary_bad_device"] == "101"  # CUDA_ERROR_INVALID_DEVICE
    assert out["hooks"] == "1024,14,1"
    assert out["checks"] == "0,0,0"
    assert out["checks_null"] == "1"


def test_the_integrity_check_is_hmac_md2_of_what_cudart_hashes(libs: dict[str, Path], tables: Path) -> None:
    done = run([str(tables)], sim_env(libs))
    out = parse_kv(done.stdout)
    assert out["integrity_v0"] == "3341181c03cb675c8ed383aa1f4cd1e8"
    assert out["integrity_v1"] == "1841181c03cb675c8ed383aa1f4cd1e8"
    assert out["integrity_null"] == "1"
    driver, pid, thread, rt_table, table, function, domain, bus, device = map(int, out["hash_inputs"].split(","))
    message = struct.pack("<IIIIQQQQ", driver, 13002, pid, thread, rt_table, table, function, 1700000000)
    message += bytes.fromhex(out["uuid"]) + struct.pack("<iii", domain, bus, device)
    assert len(message) == 76  # one device, as the runtime hashes it
    digest = hmac.new(INTEGRITY_KEY, message, Md2).digest()  # type: ignore[arg-type]  # a hashlib-style class
    low, high = struct.unpack("<QQ", digest)
    assert out["integrity_v2"] == f"0,{low:016x},{high:016x}"


def test_trace_names_every_table_and_entry_point_asked_for(libs: dict[str, Path], tables: Path) -> None:
    quiet = run([str(tables)], sim_env(libs))
    assert quiet.stderr == ""  # nothing without TF_SIM_TRACE
    traced = run([str(tables)], sim_env(libs, TF_SIM_TRACE="1")).stderr.splitlines()
    assert "tf-simgpu: cuGetExportTable c693336e-1121-df11-a8c3-68f355d89593 -> CONTEXT_LOCAL_STORAGE" in traced
    assert "tf-simgpu: cuGetExportTable 5a5a5a5a-5a5a-5a5a-5a5a-5a5a5a5a5a5a -> NOT_SUPPORTED" in traced
    assert "tf-simgpu: cuGetProcAddress cuInit (13000, flags 0) -> cuInit" in traced
    assert "tf-simgpu: cuGetProcAddress cuCtxCreate (13000, flags 0) -> cuCtxCreate_v4" in traced
