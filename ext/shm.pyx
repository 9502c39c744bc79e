# cython: language_level=3
"""Binding of the shared-memory region (ext/include/tf/shm_layout.h).

Low level on purpose: tfcore.ipc.region wraps it in the Region class.  Content problems
raise FormatError (a ValueError) with the reason; OS problems raise OSError.  Every access
is bounds-checked here, so no call can touch memory outside the mapping.
"""

import os

from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.string cimport memcpy
from posix.mman cimport MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE, mmap, munmap

from shm cimport *


cdef extern from "<string.h>" nogil:
    size_t strnlen(const char *s, size_t maxlen)

MAGIC = TF_SHM_MAGIC
VERSION_MAJOR = TF_SHM_VERSION_MAJOR
VERSION_MINOR = TF_SHM_VERSION_MINOR
MAX_DEVICES = TF_SHM_MAX_DEVICES
MAX_PROCS = TF_SHM_MAX_PROCS
UUID_LEN = TF_SHM_UUID_LEN
REGION_SIZE = TF_SHM_REGION_SIZE


class FormatError(ValueError):
    """The file is not a region this build can read."""


def field_layout():
    """[(struct, field, offset, size)] for every field, straight from offsetof/sizeof."""
    return [(tf_shm_fields[i].struct_name.decode(), tf_shm_fields[i].field.decode(),
             tf_shm_fields[i].offset, tf_shm_fields[i].size)
            for i in range(TF_SHM_FIELD_COUNT)]


cdef class Mapping:
    """One mmap of a region file."""

    cdef tf_shm_region *r
    cdef size_t size
    cdef readonly bint writable

    def __cinit__(self):
        self.r = NULL

    def __dealloc__(self):
        if self.r != NULL:
            munmap(self.r, self.size)

    cdef void _map(self, int fd, size_t size, bint writable) except *:
        cdef void *p = mmap(NULL, size, PROT_READ | (PROT_WRITE if writable else 0),
                            MAP_SHARED, fd, 0)
        if p == MAP_FAILED:
            raise OSError("mmap failed")
        self.r = <tf_shm_region *>p
        self.size = size
        self.writable = writable

    @staticmethod
    def create(str path, list devices):
        """Creates and publishes a region; devices are (uuid bytes, vram limit, tflops request
        milli, tflops limit milli).  Built under a temporary name and linked into place, so a
        reader never sees a half-written region and an existing file is never replaced."""
        if len(devices) > TF_SHM_MAX_DEVICES:
            raise FormatError(f"{len(devices)} devices; at most {TF_SHM_MAX_DEVICES} fit")
        cdef Mapping m = Mapping()
        cdef tf_shm_device *d
        tmp = f"{path}.tmp-{os.getpid()}"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, TF_SHM_REGION_SIZE)
            m._map(fd, TF_SHM_REGION_SIZE, True)
            for i, (uuid, vram_limit, tflops_request, tflops_limit) in enumerate(devices):
                raw = bytes(uuid)
                if len(raw) >= TF_SHM_UUID_LEN:
                    raise FormatError(f"uuid {raw!r} longer than {TF_SHM_UUID_LEN - 1} bytes")
                d = &m.r.devices[i]
                memcpy(d.uuid, <const char *>raw, len(raw))
                d.vram_limit_bytes = vram_limit
                d.tflops_request_milli = tflops_request
                d.tflops_limit_milli = tflops_limit
            m.r.header.version_major = TF_SHM_VERSION_MAJOR
            m.r.header.version_minor = TF_SHM_VERSION_MINOR
            m.r.header.total_size = TF_SHM_REGION_SIZE
            m.r.header.device_count = len(devices)
            m.r.header.max_devices = TF_SHM_MAX_DEVICES
            m.r.header.max_procs = TF_SHM_MAX_PROCS
            # Magic last: a torn create never looks valid.
            m.r.header.magic = TF_SHM_MAGIC
            os.link(tmp, path)
        finally:
            os.close(fd)
            os.unlink(tmp)
        return m

    @staticmethod
    def open(str path, bint writable=False):
        """Maps an existing region after validating it (size, magic, version, counts)."""
        cdef Mapping m = Mapping()
        fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            if size < sizeof(tf_shm_header):
                raise FormatError(tf_shm_status_text(tf_shm_validate(NULL, size)).decode())
            m._map(fd, size, writable)
        finally:
            os.close(fd)
        cdef tf_shm_status status = tf_shm_validate(m.r, m.size)
        if status != TF_SHM_OK:
            text = tf_shm_status_text(status).decode()
            if status == TF_SHM_BAD_MAJOR:
                text += f" {m.r.header.version_major} (this build reads {TF_SHM_VERSION_MAJOR})"
            m.close()
            raise FormatError(text)
        return m

    cdef tf_shm_region *_region(self) except NULL:
        if self.r == NULL:
            raise ValueError("region is closed")
        return self.r

    cdef int _device(self, int index) except -1:
        if not 0 <= index < <int>self._region().header.device_count:
            raise IndexError(f"device {index} out of range")
        return index

    cdef int _slot(self, int slot) except -1:
        if not 0 <= slot < TF_SHM_MAX_PROCS:
            raise IndexError(f"process slot {slot} out of range")
        return slot

    cdef void _need_write(self) except *:
        self._region()
        if not self.writable:
            raise PermissionError("region is mapped read-only")

    def close(self):
        if self.r != NULL:
            munmap(self.r, self.size)
            self.r = NULL

    def header(self):
        """(magic, major, minor, total_size, device_count, generation)"""
        cdef tf_shm_header *h = &self._region().header
        return (h.magic, h.version_major, h.version_minor, h.total_size, h.device_count,
                tf_shm_load_u64(&h.generation))

    def device(self, int index):
        """(uuid, vram_limit, vram_used, tflops_request_milli, tflops_limit_milli)"""
        cdef tf_shm_device *d = &self._region().devices[self._device(index)]
        uuid = d.uuid[:strnlen(d.uuid, TF_SHM_UUID_LEN)]
        return (uuid, d.vram_limit_bytes, tf_shm_load_u64(&d.vram_used_bytes),
                d.tflops_request_milli, d.tflops_limit_milli)

    def process(self, int slot):
        """(pid, heartbeat_ns, used bytes per device)"""
        cdef tf_shm_proc *p = &self._region().procs[self._slot(slot)]
        used = tuple(tf_shm_load_u64(&p.used_bytes[i]) for i in range(TF_SHM_MAX_DEVICES))
        return (tf_shm_load_i32(&p.pid), tf_shm_load_u64(&p.heartbeat_ns), used)

    def add_vram_used(self, int index, int64_t delta):
        """Atomically adds delta (saturating at 0); returns the new device total."""
        self._need_write()
        return tf_shm_add_saturating(&self.r.devices[self._device(index)].vram_used_bytes, delta)

    def set_limits(self, int index, uint64_t vram_limit, uint64_t tflops_request,
                   uint64_t tflops_limit):
        """Hypervisor-side limit change; bumps the header generation afterwards."""
        self._need_write()
        cdef tf_shm_device *d = &self.r.devices[self._device(index)]
        tf_shm_store_u64(&d.vram_limit_bytes, vram_limit)
        tf_shm_store_u64(&d.tflops_request_milli, tflops_request)
        tf_shm_store_u64(&d.tflops_limit_milli, tflops_limit)
        tf_shm_add_saturating(&self.r.header.generation, 1)

    def claim_slot(self, int32_t pid):
        """Claims a free process slot for pid; -1 when the region is full."""
        self._need_write()
        if pid <= 0:
            raise ValueError(f"pid must be positive, got {pid}")
        return tf_shm_claim_slot(self.r, pid)

    def release_slot(self, int slot, int32_t pid):
        """Frees slot if pid still owns it; returns whether it did."""
        self._need_write()
        return bool(tf_shm_release_slot(self.r, self._slot(slot), pid))

    def heartbeat(self, int slot, uint64_t now_ns):
        self._need_write()
        tf_shm_store_u64(&self.r.procs[self._slot(slot)].heartbeat_ns, now_ns)

    def add_process_used(self, int slot, int index, int64_t delta):
        """Atomically adds delta to a slot's usage on one device; returns the new value."""
        self._need_write()
        return tf_shm_add_saturating(
            &self.r.procs[self._slot(slot)].used_bytes[self._device(index)], delta)

