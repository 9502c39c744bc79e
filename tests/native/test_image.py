"""The simulated driver's module-image parser (ext/simgpu/sim_image.c): what it reads from
fat binaries, ELF cubins and PTX, and that malformed or truncated images are rejected with
CUDA_ERROR_INVALID_IMAGE (200) instead of being read past.  The parser is pure C with no
driver state, so it is built on its own and fuzzed in-process through ctypes."""

from __future__ import annotations

import ctypes
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import REPO, sim_env

pytestmark = pytest.mark.simulator_only

INVALID_IMAGE = 200


class Global(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("size", ctypes.c_uint64), ("init", ctypes.c_void_p)]


class Image(ctypes.Structure):
    _fields_ = [
        ("opaque", ctypes.c_int),
        ("buffer_count", ctypes.c_size_t),
        ("buffers", ctypes.c_void_p),
        ("kernel_count", ctypes.c_size_t),
        ("kernels", ctypes.POINTER(ctypes.c_char_p)),
        ("global_count", ctypes.c_size_t),
        ("globals", ctypes.POINTER(Global)),
    ]


Parsed = tuple[int, list[str], dict[str, int], bool]
last_inits: dict[str, bytes | None] = {}  # initial bytes of the globals of the last parse


INFLATE = ctypes.CFUNCTYPE(
    ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t
)


@pytest.fixture(scope="module")
def parse(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Parsed]:
    lib_path = tmp_path_factory.mktemp("image") / "libimage.so"
    cmd = ["gcc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O1", "-g", "-shared", "-fPIC"]
    cmd += [str(REPO / "ext/simgpu/sim_image.c"), "-o", str(lib_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    lib = ctypes.CDLL(str(lib_path))
    lib.tf_image_parse.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_void_p,
        ctypes.POINTER(Image),
        ctypes.c_void_p,
    ]
    lib.tf_image_free.argtypes = [ctypes.POINTER(Image)]

    def parse_bytes(data: bytes, inflate: Callable[[int, bytes, int], bytes | int] | None = None) -> Parsed:
        """Parses data; `inflate(codec, payload, size)` stands in for the codecs."""

        def call(codec: int, src: int, n: int, dst: int, cap: int) -> int:
            assert inflate is not None
            out = inflate(codec, ctypes.string_at(src, n), cap)
            if isinstance(out, int):
                return out
            ctypes.memmove(dst, out, len(out))
            return len(out)

        img = Image()
        why = ctypes.c_char_p()
        callback = INFLATE(call) if inflate is not None else None
        rc = lib.tf_image_parse(data, len(data), callback, ctypes.byref(img), ctypes.byref(why))
        if rc != 0:
            assert why.value, "a rejection names the field that was wrong"
            return rc, [], {}, False
        kernels = [img.kernels[i].decode() for i in range(img.kernel_count)]
        globals_ = {img.globals[i].name.decode(): img.globals[i].size for i in range(img.global_count)}
        last_inits.clear()
        for i in range(img.global_count):
            g = img.globals[i]
            last_inits[g.name.decode()] = ctypes.string_at(g.init, g.size) if g.init else None
        opaque = bool(img.opaque)
        lib.tf_image_free(ctypes.byref(img))
        return rc, kernels, globals_, opaque

    return parse_bytes


def cubin(kernels: list[str], objects: dict[str, bytes]) -> bytes:
    """A minimal 64-bit ELF as nvcc lays out a cubin: kernels are STT_FUNC symbols with the
    CUDA entry bit in st_other, __device__ variables STT_OBJECT symbols in .nv.global.init."""
    strtab = b"\0"
    symbols = [bytes(24)]
    data = b"".join(objects.values())
    offset = 0
    for name, init in objects.items():
        symbols.append(struct.pack("<IBBHQQ", len(strtab), 0x01, 0, 3, offset, len(init)))
        strtab += name.encode() + b"\0"
        offset += len(init)
    for name in kernels:
        symbols.append(struct.pack("<IBBHQQ", len(strtab), 0x12, 0x10, 4, 0, 16))
        strtab += name.encode() + b"\0"
    symtab = b"".join(symbols)
    shstrtab = b"\0.shstrtab\0.strtab\0.symtab\0.nv.global.init\0.text\0"
    bodies = [shstrtab, strtab, symtab, data, bytes(16)]
    offsets, pos = [], 64
    for body in bodies:
        offsets.append(pos)
        pos += len(body)
    shoff = pos
    sections = [bytes(64)]
    specs = [(1, 3, 0, 0), (11, 3, 0, 0), (19, 2, 2, 24), (27, 1, 0, 0), (43, 1, 0, 0)]  # name, type, link, entsize
    for (name_offset, kind, link, entsize), off, body in zip(specs, offsets, bodies, strict=True):
        sections.append(struct.pack("<IIQQQQIIQQ", name_offset, kind, 0, 0, off, len(body), link, 0, 8, entsize))
    header = b"\x7fELF\x02\x01\x01\x41" + bytes(8)
    header += struct.pack("<HHIQQQIHHHHHH", 2, 190, 1, 0, 0, shoff, 0, 64, 0, 0, 64, len(sections), 1)
    return header + b"".join(bodies) + b"".join(sections)


def fatbin(entries: list[tuple[int, bytes, int]], uncompressed: int = 0) -> bytes:
    """A fat binary of (kind, payload, flags) entries: 1 = PTX, 2 = ELF."""
    files = b""
    for kind, payload, flags in entries:
        size = uncompressed if flags & 0xA000 else 0
        files += struct.pack("<HHIIIIIIIIIQQQ", kind, 0x101, 64, len(payload), 0, 0, 0, 0, 90, 64, 0, flags, 0, size)
        files += payload
    return struct.pack("<IHHQ", 0xBA55ED50, 1, 16, len(files)) + files


PTX = b""".version 8.0
.target sm_90
.address_size 64
// .entry commented_out(
.global .align 4 .b8 table[64];
.visible .global .align 8 .u64 counter;
.extern .global .align 4 .b8 elsewhere[16];
.visible .entry saxpy(.param .u64 p) { ld.global.f32 %f1, [p]; ret; }
.visible .entry _Z4stepPf(.param .u64 p) { ret; }
\0"""


def test_ptx_kernels_and_globals(parse: Callable[..., Parsed]) -> None:
    assert parse(PTX) == (0, ["saxpy", "_Z4stepPf"], {"table": 64, "counter": 8}, False)
    assert last_inits == {"table": None, "counter": None}  # no initializer: zeros


def test_ptx_initializers_give_the_initial_bytes(parse: Callable[..., Parsed]) -> None:
    ptx = b""".version 8.0
.global .align 4 .b8 scale_by[8] = {0, 0, 128, 63, 0, 0, 0, 64};
.global .align 4 .f32 half[2] = {0f3F000000, 0fBF000000};
.global .align 8 .u64 big = 0x0102030405060708;
.global .align 4 .s32 neg[3] = {-1, 2};
\0"""
    assert parse(ptx)[2] == {"scale_by": 8, "half": 8, "big": 8, "neg": 12}
    assert last_inits == {
        "scale_by": struct.pack("<ff", 1.0, 2.0),
        "half": struct.pack("<ff", 0.5, -0.5),
        "big": struct.pack("<Q", 0x0102030405060708),
        "neg": struct.pack("<iii", -1, 2, 0),  # elements not listed are zero
    }


def test_cubin_kernels_and_globals(parse: Callable[..., Parsed]) -> None:
    image = cubin(["_Z5scalePfi", "k2"], {"scale_by": bytes(16), "flag": bytes(4)})
    assert parse(image) == (0, ["_Z5scalePfi", "k2"], {"scale_by": 16, "flag": 4}, False)


def test_fatbin_merges_entries_and_marks_compressed_ones_opaque(parse: Callable[..., Parsed]) -> None:
    image = fatbin([(2, cubin(["a"], {}), 0x11), (2, cubin(["a", "b"], {}), 0x11), (1, PTX, 0x11)])
    rc, kernels, _globals, opaque = parse(image)
    assert (rc, kernels, opaque) == (0, ["a", "b", "saxpy", "_Z4stepPf"], False)
    compressed = fatbin([(2, cubin(["a"], {}), 0x11), (1, b"(\xb5/\xfd zstd bytes", 0x8011)])
    assert parse(compressed) == (0, ["a"], {}, True)


def test_compressed_entries_go_through_the_decompressor(parse: Callable[..., Parsed]) -> None:
    """The payload is handed over with its codec and uncompressed size; what comes back is
    parsed like a plain entry.  A codec that is missing leaves the image opaque; a payload
    that does not decompress makes it invalid."""
    seen: list[tuple[int, int]] = []

    def reverse(codec: int, payload: bytes, cap: int) -> bytes:
        seen.append((codec, cap))
        return payload[::-1]

    zstd_ptx = fatbin([(1, PTX[::-1], 0x8011)], uncompressed=len(PTX))
    assert parse(zstd_ptx, reverse) == (0, ["saxpy", "_Z4stepPf"], {"table": 64, "counter": 8}, False)
    lz4_elf = fatbin([(2, cubin(["k"], {"g": b"\x07" * 4})[::-1], 0x2011)], uncompressed=4096)
    assert parse(lz4_elf, reverse) == (0, ["k"], {"g": 4}, False)
    assert seen == [(2, len(PTX)), (1, 4096)]  # TF_CODEC_ZSTD, TF_CODEC_LZ4
    assert parse(zstd_ptx, lambda *_: -1) == (0, [], {}, True)
    assert parse(zstd_ptx, lambda *_: 0)[0] == INVALID_IMAGE
    assert parse(fatbin([(1, b"x", 0x8011)], uncompressed=0), reverse)[0] == INVALID_IMAGE


@pytest.mark.parametrize(
    "image",
    [
        b"",
        b"garbage that is no image at all",
        b"\x7fELF\x01\x01\x01" + bytes(64),  # 32-bit ELF
        struct.pack("<IHHQ", 0xBA55ED50, 2, 16, 0),  # fatbin version 2
        struct.pack("<IHHQ", 0xBA55ED50, 1, 16, 1 << 40),  # entries past the end
        struct.pack("<IIQQ", 0x466243B1, 3, 0, 0),  # wrapper version 3
        struct.pack("<IIQQ", 0x466243B1, 1, 0, 0),  # wrapper without data
        b".version 8.0\n.entry k(",  # PTX without its NUL
    ],
)
def test_malformed_images_are_invalid(parse: Callable[..., Parsed], image: bytes) -> None:
    assert parse(image)[0] == INVALID_IMAGE


def test_every_truncation_of_a_cubin_is_rejected_or_parsed(parse: Callable[..., Parsed]) -> None:
    image = fatbin([(2, cubin(["kernel"], {"g": bytes(8)}), 0x11)])
    for cut in range(len(image)):
        rc, kernels, _g, _o = parse(image[:cut])
        assert rc == INVALID_IMAGE or kernels == [], cut  # never a kernel from half an image
    assert parse(image)[1] == ["kernel"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_images_never_crash(parse: Callable[..., Parsed], data: st.DataObject) -> None:
    seed = data.draw(
        st.sampled_from([cubin(["k"], {"g": bytes(8)}), fatbin([(2, cubin(["k"], {}), 0x11), (1, PTX, 0)]), PTX])
    )
    image = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(image) - 1))
        image[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(image)))
    rc, _k, _g, _o = parse(bytes(image[:cut]))
    assert rc in (0, INVALID_IMAGE)


@given(st.binary(max_size=512))
@settings(max_examples=300, deadline=None)
def test_random_bytes_never_crash(parse: Callable[..., Parsed], blob: bytes) -> None:
    assert parse(blob)[0] in (0, INVALID_IMAGE)


DRIVER_LOADS = """
import sys
from cuda.bindings import driver as d
d.cuInit(0)
err, ctx = d.cuDevicePrimaryCtxRetain(0)
d.cuCtxSetCurrent(ctx)
print("garbage=%d" % int(d.cuModuleLoadData(b"not an image\\0")[0]))
print("library_garbage=%d" % int(d.cuLibraryLoadData(b"\\x7fELF\\x01", None, None, 0, None, None, 0)[0]))
print("truncated_file=%d" % int(d.cuModuleLoad(sys.argv[1].encode())[0]))
err, lib = d.cuLibraryLoadData(sys.argv[2].encode() + b"\\0", None, None, 0, None, None, 0)
print("ptx=%d" % int(err))
print("kernel=%d" % int(d.cuLibraryGetKernel(lib, b"saxpy")[0]))
print("missing=%d" % int(d.cuLibraryGetKernel(lib, b"nope")[0]))
err, mod = d.cuLibraryGetModule(lib)
err, ptr, size = d.cuModuleGetGlobal(mod, b"table")
print("global=%d,%d" % (int(err), size))
print("unload=%d,%d" % (int(d.cuLibraryUnload(lib)[0]), int(d.cuLibraryUnload(lib)[0])))
"""


def test_driver_loads_reject_bad_images_and_resolve_names(libs: dict[str, Path], tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.cubin"
    truncated.write_bytes(cubin(["k"], {})[:100])
    done = subprocess.run(
        [sys.executable, "-c", DRIVER_LOADS, str(truncated), PTX.rstrip(b"\0").decode()],
        env=sim_env(libs),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert out == {
        "garbage": "200",
        "library_garbage": "200",
        "truncated_file": "200",
        "ptx": "0",
        "kernel": "0",
        "missing": "500",  # CUDA_ERROR_NOT_FOUND
        "global": "0,64",
        "unload": "0,400",  # the second unload: CUDA_ERROR_INVALID_HANDLE
    }
