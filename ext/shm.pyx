# cython: language_level=3
"""Binding of the shared-memory region (ext/include/tf/shm_layout.h, shm_slots.h).

Low level on purpose: tfcore.ipc.region wraps it in the Region class.  Content problems
raise FormatError (a ValueError) with the reason; OS problems raise OSError.  Every access
is bounds-checked here, so no call can touch memory outside the mapping.
"""

import os
import time

from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset
from posix.mman cimport MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE, mmap, munmap

from shm cimport *


cdef extern from "<string.h>" nogil:
    size_t strnlen(const char *s, size_t maxlen)

MAGIC = TF_SHM_MAGIC
VERSION_MAJOR = TF_SHM_VERSION_MAJOR
VERSION_MINOR = TF_SHM_VERSION_MINOR
MAX_DEVICES = TF_SHM_MAX_DEVICES
MAX_PROCS = TF_SHM_MAX_PROCS
MAX_SHARED = TF_SHM_MAX_SHARED
UUID_LEN = TF_SHM_UUID_LEN
LIMITS_SIZE = TF_SHM_LIMITS_SIZE
STATE_SIZE = TF_SHM_STATE_SIZE
KIND_LIMITS = TF_SHM_KIND_LIMITS
KIND_STATE = TF_SHM_KIND_STATE
LIMITS_SUFFIX = ".limits"


class FormatError(ValueError):
    """The file is not a region file this build can read."""


def field_layout():
    """[(struct, field, offset, size)] for every field, straight from offsetof/sizeof."""
    return [(tf_shm_fields[i].struct_name.decode(), tf_shm_fields[i].field.decode(),
             tf_shm_fields[i].offset, tf_shm_fields[i].size)
            for i in range(TF_SHM_FIELD_COUNT)]


cdef void _init_header(tf_shm_header *h, uint32_t kind, uint32_t count):
    h.version_major = TF_SHM_VERSION_MAJOR
    h.version_minor = TF_SHM_VERSION_MINOR
    h.total_size = tf_shm_kind_size(kind)
    h.device_count = count
    h.max_devices = TF_SHM_MAX_DEVICES
    h.max_procs = TF_SHM_MAX_PROCS
    h.kind = kind


def _build(str tmp, uint32_t kind, list devices, int mode, int owner_uid):
    """Writes a complete file under a temporary name (magic last, so a torn one never looks
    valid) with the given mode and owner."""
    cdef size_t size = tf_shm_kind_size(kind)
    cdef void *p
    cdef tf_shm_limits *lim
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, size)
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        if p == MAP_FAILED:
            raise OSError("mmap failed")
        try:
            _init_header(<tf_shm_header *>p, kind, len(devices))
            if kind == TF_SHM_KIND_LIMITS:
                lim = <tf_shm_limits *>p
                for i, (uuid, vram_limit, tflops_request, tflops_limit) in enumerate(devices):
                    raw = bytes(uuid)
                    memcpy(lim.devices[i].uuid, <const char *>raw, len(raw))
                    lim.devices[i].vram_limit_bytes = vram_limit
                    lim.devices[i].tflops_request_milli = tflops_request
                    lim.devices[i].tflops_limit_milli = tflops_limit
            (<tf_shm_header *>p).magic = TF_SHM_MAGIC
        finally:
            munmap(p, size)
        if owner_uid >= 0:
            os.fchown(fd, owner_uid, -1)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def create(str path, list devices, int tenant_uid=-1):
    """Creates and publishes a region: PATH.limits (mode 0644, the creator's) and PATH (the
    state: mode 0666, or 0600 owned by tenant_uid).  devices are (uuid bytes, vram limit,
    tflops request milli, tflops limit milli).  Each file is built under a temporary name and
    linked into place, so a reader never sees a half-written file and an existing one is
    never replaced."""
    if len(devices) > TF_SHM_MAX_DEVICES:
        raise FormatError(f"{len(devices)} devices; at most {TF_SHM_MAX_DEVICES} fit")
    for uuid, *_ in devices:
        if len(bytes(uuid)) >= TF_SHM_UUID_LEN:
            raise FormatError(f"uuid {bytes(uuid)!r} longer than {TF_SHM_UUID_LEN - 1} bytes")
    limits_path = path + LIMITS_SUFFIX
    suffix = f".tmp-{os.getpid()}"
    state_mode = 0o600 if tenant_uid >= 0 else 0o666
    try:
        _build(limits_path + suffix, TF_SHM_KIND_LIMITS, devices, 0o644, -1)
        _build(path + suffix, TF_SHM_KIND_STATE, devices, state_mode, tenant_uid)
        os.link(limits_path + suffix, limits_path)
        try:
            os.link(path + suffix, path)
        except OSError:
            os.unlink(limits_path)
            raise
    finally:
        for tmp in (limits_path + suffix, path + suffix):
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


cdef class _Mapped:
    """One mmap of a region file of a known kind; keeps its descriptor (slot locks live on it)."""

    cdef void *base
    cdef size_t size
    cdef int fd
    cdef readonly bint writable
    cdef uint32_t kind

    def __cinit__(self):
        self.base = NULL
        self.fd = -1

    def __dealloc__(self):
        self._unmap()

    cdef void _unmap(self):
        if self.base != NULL:
            munmap(self.base, self.size)
            self.base = NULL
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    cdef void _open(self, str path, uint32_t kind, bint writable) except *:
        fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)
        self.fd = fd
        self.kind = kind
        self.writable = writable
        size = os.fstat(fd).st_size
        if size < sizeof(tf_shm_header):
            self._unmap()
            raise FormatError(tf_shm_status_text(tf_shm_validate(NULL, size, kind)).decode())
        cdef void *p = mmap(NULL, size, PROT_READ | (PROT_WRITE if writable else 0), MAP_SHARED, fd, 0)
        if p == MAP_FAILED:
            self._unmap()
            raise OSError("mmap failed")
        self.base = p
        self.size = size
        cdef tf_shm_status status = tf_shm_validate(p, size, kind)
        if status != TF_SHM_OK:
            text = tf_shm_status_text(status).decode()
            if status == TF_SHM_BAD_MAJOR:
                text += f" {(<tf_shm_header *>p).version_major} (this build reads {TF_SHM_VERSION_MAJOR})"
            self._unmap()
            raise FormatError(text)

    cdef tf_shm_header *_header(self) except NULL:
        if self.base == NULL:
            raise ValueError("region is closed")
        return <tf_shm_header *>self.base

    cdef int _device(self, int index) except -1:
        # The header's count may have been rewritten by the tenant: never trust it past the arrays.
        if not 0 <= index < <int>min(self._header().device_count, TF_SHM_MAX_DEVICES):
            raise IndexError(f"device {index} out of range")
        return index

    cdef void _need_write(self) except *:
        self._header()
        if not self.writable:
            raise PermissionError("region is mapped read-only")

    def close(self):
        self._unmap()

    def problem(self):
        """Why the mapped file is no longer a valid region file ('' when it is): a tenant can
        rewrite its state file's header after it was opened."""
        cdef tf_shm_status status = tf_shm_validate(self._header(), self.size, self.kind)
        return "" if status == TF_SHM_OK else tf_shm_status_text(status).decode()

    def rebuild_header(self, uint32_t device_count):
        """Writes a valid header over a damaged one in place (the file keeps its inode, so live
        processes and their slot locks are untouched); magic last."""
        self._need_write()
        if device_count > TF_SHM_MAX_DEVICES:
            raise FormatError(f"{device_count} devices; at most {TF_SHM_MAX_DEVICES} fit")
        tf_shm_rebuild_header(self._header(), self.kind, device_count)

    def header(self):
        """(magic, major, minor, total_size, device_count, generation)"""
        cdef tf_shm_header *h = self._header()
        return (h.magic, h.version_major, h.version_minor, h.total_size, h.device_count,
                tf_shm_load_u64(&h.generation))


def repair_state(str path, uint32_t device_count):
    """Makes a damaged STATE file valid again in place: the right size and a rebuilt header,
    every usage and slot kept (live processes keep their mappings and locks).  Never follows a
    symlink.  Returns why it was unusable ('' when it was fine and nothing was written)."""
    if device_count > TF_SHM_MAX_DEVICES:
        raise FormatError(f"{device_count} devices; at most {TF_SHM_MAX_DEVICES} fit")
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    cdef void *p
    cdef tf_shm_header *h
    cdef tf_shm_status status
    try:
        size = os.fstat(fd).st_size
        if size != TF_SHM_STATE_SIZE:
            os.ftruncate(fd, TF_SHM_STATE_SIZE)
        p = mmap(NULL, TF_SHM_STATE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        if p == MAP_FAILED:
            raise OSError("mmap failed")
        try:
            h = <tf_shm_header *>p
            status = TF_SHM_SIZE_MISMATCH
            if size == TF_SHM_STATE_SIZE:
                status = tf_shm_validate(p, size, TF_SHM_KIND_STATE)
            if status == TF_SHM_OK and h.device_count == device_count:
                return ""
            why = tf_shm_status_text(status).decode() if status != TF_SHM_OK else "wrong device count"
            tf_shm_rebuild_header(h, TF_SHM_KIND_STATE, device_count)
            return why
        finally:
            munmap(p, TF_SHM_STATE_SIZE)
    finally:
        os.close(fd)


cdef class LimitsFile(_Mapped):
    """PATH.limits: what the worker is granted."""

    @staticmethod
    def open(str path, bint writable=False):
        cdef LimitsFile m = LimitsFile()
        m._open(path, TF_SHM_KIND_LIMITS, writable)
        return m

    def device(self, int index):
        """(uuid, vram_limit, tflops_request_milli, tflops_limit_milli)"""
        self._header()
        cdef tf_shm_limit *d = &(<tf_shm_limits *>self.base).devices[self._device(index)]
        uuid = d.uuid[:strnlen(d.uuid, TF_SHM_UUID_LEN)]
        return (uuid, tf_shm_load_u64(&d.vram_limit_bytes), tf_shm_load_u64(&d.tflops_request_milli),
                tf_shm_load_u64(&d.tflops_limit_milli))

    def set_limits(self, int index, uint64_t vram_limit, uint64_t tflops_request, uint64_t tflops_limit):
        """Hypervisor-side limit change; bumps the header generation afterwards."""
        self._need_write()
        cdef tf_shm_limit *d = &(<tf_shm_limits *>self.base).devices[self._device(index)]
        tf_shm_store_u64(&d.vram_limit_bytes, vram_limit)
        tf_shm_store_u64(&d.tflops_request_milli, tflops_request)
        tf_shm_store_u64(&d.tflops_limit_milli, tflops_limit)
        tf_shm_add_saturating(&(<tf_shm_header *>self.base).generation, 1)

    def compute_rate(self, int index):
        """(rate in cost units per second, burst in cost units); 0 rate = unlimited"""
        self._header()
        cdef tf_shm_limit *d = &(<tf_shm_limits *>self.base).devices[self._device(index)]
        return (tf_shm_load_u64(&d.compute_rate), tf_shm_load_u64(&d.compute_burst))

    def tier(self):
        """(tier_flags, tier_request, tier_request_seq)"""
        cdef tf_shm_header *h = self._header()
        return (h.tier_flags, h.tier_request, tf_shm_load_u64(&h.tier_request_seq))

    def set_tier_flags(self, uint32_t flags):
        """Hypervisor only: TF_TIER_* bits (read by each process when it loads the region)."""
        self._need_write()
        self._header().tier_flags = flags

    def request_tier(self, uint32_t request):
        """Hypervisor only: asks every process of the worker to move; returns the new seq."""
        self._need_write()
        cdef tf_shm_header *h = self._header()
        h.tier_request = request
        cdef uint64_t seq = tf_shm_load_u64(&h.tier_request_seq) + 1
        tf_shm_store_u64(&h.tier_request_seq, seq)  # release: the request is visible first
        return seq


cdef class StateFile(_Mapped):
    """PATH: per-device usage and process slots."""

    cdef uint64_t owned  # slots this descriptor holds (bit i = slot i)

    @staticmethod
    def open(str path, bint writable=False):
        cdef StateFile m = StateFile()
        m._open(path, TF_SHM_KIND_STATE, writable)
        m.owned = 0
        return m

    cdef tf_shm_state *_state(self) except NULL:
        self._header()
        return <tf_shm_state *>self.base

    cdef int _slot(self, int slot) except -1:
        if not 0 <= slot < TF_SHM_MAX_PROCS:
            raise IndexError(f"process slot {slot} out of range")
        return slot

    def used(self, int index):
        """VRAM used on the device: the sum over process slots, the unslotted counter and the
        shared allocations someone holds"""
        return tf_shm_vram_used(self._state(), self._device(index))

    def compute_stats(self, int index):
        """(launches, throttled, cost consumed, waited ns): cumulative, of the device's bucket"""
        cdef tf_shm_usage *u = &self._state().usage[self._device(index)]
        return (tf_shm_load_u64(&u.compute_launches), tf_shm_load_u64(&u.compute_throttled),
                tf_shm_load_u64(&u.compute_consumed), tf_shm_load_u64(&u.compute_waited_ns))

    def process(self, int slot):
        """(pid, heartbeat_ns, used bytes per device, alive)"""
        cdef tf_shm_proc *p = &self._state().procs[self._slot(slot)]
        used = tuple(tf_shm_load_u64(&p.used_bytes[i]) for i in range(TF_SHM_MAX_DEVICES))
        pid = tf_shm_load_i32(&p.pid)
        alive = pid != 0 and ((self.owned >> slot) & 1 or tf_shm_slot_alive(self.fd, slot))
        return (pid, tf_shm_load_u64(&p.heartbeat_ns), used, bool(alive))

    def process_tier(self, int slot):
        """(host bytes, disk bytes, pinned bytes, freezes, resumes, ack seq, where, result)"""
        cdef tf_shm_proc *p = &self._state().procs[self._slot(slot)]
        return (tf_shm_load_u64(&p.tier_host_bytes), tf_shm_load_u64(&p.tier_disk_bytes),
                tf_shm_load_u64(&p.tier_pinned_bytes), p.tier_freezes, p.tier_resumes, p.tier_ack_seq,
                p.tier_where, p.tier_result)

    def shared(self):
        """[(entry, device, bytes, holder slots)] of the shared allocations someone holds"""
        cdef tf_shm_state *s = self._state()
        cdef uint32_t entries = min(s.header.shared_high_water, TF_SHM_MAX_SHARED)
        cdef uint64_t holders
        cdef tf_shm_shared *e
        out = []
        for i in range(entries):
            e = &s.shared[i]
            holders = tf_shm_load_u64(&e.holders)
            if holders != 0:
                slots = tuple(b for b in range(TF_SHM_MAX_PROCS) if (holders >> b) & 1)
                out.append((i, e.device, tf_shm_load_u64(&e.bytes), slots))
        return out

    def add_vram_used(self, int index, int64_t delta):
        """Atomically adds delta (saturating at 0) to the bytes held outside any process slot;
        returns the new device total."""
        self._need_write()
        cdef int device = self._device(index)
        tf_shm_add_saturating(&self._state().usage[device].unslotted_bytes, delta)
        return tf_shm_vram_used(self._state(), device)

    def claim_slot(self, int32_t pid):
        """Claims a free process slot for pid, held through this mapping; -1 when full."""
        self._need_write()
        if pid <= 0:
            raise ValueError(f"pid must be positive, got {pid}")
        cdef int slot = tf_shm_slot_claim(self._state(), self.fd, pid, time.monotonic_ns(), self.owned)
        if slot >= 0:
            self.owned |= (<uint64_t>1) << slot
        return slot

    def release_slot(self, int slot, int32_t pid):
        """Frees a slot this mapping holds if pid still owns it, returning its usage to the
        worker; returns whether it did."""
        self._need_write()
        cdef tf_shm_state *s = self._state()
        self._slot(slot)
        if not (self.owned >> slot) & 1 or tf_shm_load_i32(&s.procs[slot].pid) != pid:
            return False
        tf_shm_slot_release(s, self.fd, slot)
        self.owned &= ~((<uint64_t>1) << slot)
        return True

    def heartbeat(self, int slot, uint64_t now_ns):
        self._need_write()
        tf_shm_store_u64(&self._state().procs[self._slot(slot)].heartbeat_ns, now_ns)

    def add_process_used(self, int slot, int index, int64_t delta):
        """Atomically adds delta to a slot's usage on one device; returns the new value."""
        self._need_write()
        return tf_shm_add_saturating(&self._state().procs[self._slot(slot)].used_bytes[self._device(index)], delta)

    def sweep(self):
        """Reclaims the slots of processes that are gone; returns (count, bytes per device)."""
        self._need_write()
        cdef uint64_t reclaimed[16]
        memset(reclaimed, 0, sizeof(reclaimed))
        count = tf_shm_sweep(self._state(), self.fd, self.owned, reclaimed)
        return count, tuple(reclaimed[i] for i in range(TF_SHM_MAX_DEVICES))


def set_compute_rate(LimitsFile limits, StateFile state, int index, uint64_t rate, uint64_t burst):
    """Sets a device's token-bucket rate and depth (limits file, hypervisor only), credits the
    tokens earned at the old rate, bumps the generation and wakes the launches waiting."""
    limits._need_write()
    state._need_write()
    if index >= <int>state._header().device_count:
        raise IndexError(f"device {index} out of range")
    cdef tf_shm_limit *d = &(<tf_shm_limits *>limits.base).devices[limits._device(index)]
    tf_compute_set_rate(d, &state._state().usage[index], rate, burst)
    tf_shm_add_saturating(&(<tf_shm_header *>limits.base).generation, 1)


COMPUTE_GRANTED_RAISED = TF_COMPUTE_GRANTED_RAISED
COMPUTE_CONSUMED_REWOUND = TF_COMPUTE_CONSUMED_REWOUND


def police_compute(LimitsFile limits, StateFile state, int index):
    """Hypervisor tick for one device's bucket: advances the account the tenant cannot write,
    publishes the ceiling, clamps a granted counter raised beyond it; returns the
    COMPUTE_* bits of what it found (0: nothing wrong)."""
    limits._need_write()
    state._need_write()
    if index >= <int>min(state._header().device_count, TF_SHM_MAX_DEVICES):
        raise IndexError(f"device {index} out of range")
    cdef tf_shm_limit *d = &(<tf_shm_limits *>limits.base).devices[limits._device(index)]
    return tf_compute_police(d, &state._state().usage[index], tf_compute_now_ns())
