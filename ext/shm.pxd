# Declarations of the region contract, from ext/include/tf/shm_layout.h and shm_slots.h.
from libc.stdint cimport int32_t, int64_t, uint16_t, uint32_t, uint64_t


cdef extern from "tf/shm_layout.h" nogil:
    enum:
        TF_SHM_MAGIC
        TF_SHM_VERSION_MAJOR
        TF_SHM_VERSION_MINOR
        TF_SHM_MAX_DEVICES
        TF_SHM_MAX_PROCS
        TF_SHM_MAX_SHARED
        TF_SHM_UUID_LEN
        TF_SHM_LIMITS_SIZE
        TF_SHM_STATE_SIZE
        TF_SHM_FIELD_COUNT
        TF_SHM_KIND_LIMITS
        TF_SHM_KIND_STATE

    ctypedef struct tf_shm_header:
        uint32_t magic
        uint16_t version_major
        uint16_t version_minor
        uint64_t total_size
        uint32_t device_count
        uint32_t max_devices
        uint32_t max_procs
        uint32_t kind
        uint64_t generation
        uint32_t tier_flags
        uint32_t tier_request
        uint64_t tier_request_seq
        uint32_t shared_high_water

    ctypedef struct tf_shm_limit:
        char uuid[48]
        uint64_t vram_limit_bytes
        uint64_t tflops_request_milli
        uint64_t tflops_limit_milli
        uint64_t compute_rate
        uint64_t compute_burst

    ctypedef struct tf_shm_usage:
        uint64_t unslotted_bytes
        uint64_t compute_consumed
        uint64_t compute_granted
        uint64_t compute_refill_ns
        uint64_t compute_launches
        uint64_t compute_throttled
        uint64_t compute_waited_ns
        uint32_t compute_futex

    ctypedef struct tf_shm_proc:
        int32_t pid
        uint64_t heartbeat_ns
        uint64_t used_bytes[16]
        uint64_t tier_host_bytes
        uint64_t tier_disk_bytes
        uint64_t tier_pinned_bytes
        uint32_t tier_freezes
        uint32_t tier_resumes
        uint32_t tier_ack_seq
        uint16_t tier_where
        uint16_t tier_result

    ctypedef struct tf_shm_shared:
        uint64_t key
        uint64_t holders
        uint64_t bytes
        uint32_t device
        uint32_t generation

    ctypedef struct tf_shm_limits:
        tf_shm_header header
        tf_shm_limit devices[16]

    ctypedef struct tf_shm_state:
        tf_shm_header header
        tf_shm_usage usage[16]
        tf_shm_proc procs[64]
        tf_shm_shared shared[256]

    ctypedef struct tf_shm_field_info:
        const char *struct_name
        const char *field
        size_t offset
        size_t size

    const tf_shm_field_info tf_shm_fields[]

    ctypedef enum tf_shm_status:
        TF_SHM_OK
        TF_SHM_SIZE_MISMATCH
        TF_SHM_BAD_MAJOR

    const char *tf_shm_status_text(tf_shm_status s)
    uint64_t tf_shm_kind_size(uint32_t kind)
    tf_shm_status tf_shm_validate(const void *base, uint64_t file_size, uint32_t kind)
    uint64_t tf_shm_load_u64(const uint64_t *p)
    void tf_shm_store_u64(uint64_t *p, uint64_t v)
    int32_t tf_shm_load_i32(const int32_t *p)
    uint64_t tf_shm_add_saturating(uint64_t *p, int64_t delta)
    uint64_t tf_shm_vram_used(const tf_shm_state *s, int dev)
    void tf_shm_rebuild_header(tf_shm_header *h, uint32_t kind, uint32_t device_count)


cdef extern from "tf/shm_slots.h" nogil:
    int tf_shm_slot_claim(tf_shm_state *s, int fd, int32_t pid, uint64_t now_ns, uint64_t own_mask)
    void tf_shm_slot_release(tf_shm_state *s, int fd, int slot)
    int tf_shm_sweep(tf_shm_state *s, int fd, uint64_t own_mask, uint64_t *reclaimed)
    int tf_shm_slot_alive(int fd, int slot)


cdef extern from "tf/compute.h" nogil:
    enum:
        TF_COMPUTE_GRANTED_RAISED
        TF_COMPUTE_CONSUMED_REWOUND
    void tf_compute_set_rate(tf_shm_limit *lim, tf_shm_usage *u, uint64_t rate, uint64_t burst)
    unsigned tf_compute_police(tf_shm_limit *lim, tf_shm_usage *u, uint64_t now)
    uint64_t tf_compute_now_ns()
