/*
 * cuda_abi.h - the slice of the CUDA driver ABI that tensor-fusion's C code uses.
 *
 * Declared here (not taken from the toolkit's cuda.h) so the shim and the simulated
 * driver build on machines without the CUDA toolkit.  Values are ABI facts of the
 * driver; tests/native compare them against cuda.h when the toolkit is installed.
 */
#ifndef TF_CUDA_ABI_H
#define TF_CUDA_ABI_H

#include <stddef.h>
#include <stdint.h>

typedef int CUdevice;
typedef uint64_t cuuint64_t;
typedef uint64_t CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUmemPoolHandle_st *CUmemoryPool;
typedef struct CUarray_st *CUarray;
typedef struct CUmipmappedArray_st *CUmipmappedArray;
typedef struct CUgraphExec_st *CUgraphExec;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphNode_st *CUgraphNode;
typedef struct CUkern_st *CUkernel;
typedef struct CUlaunchAttribute_st CUlaunchAttribute; /* opaque to us */
typedef struct CUexecAffinityParam_st CUexecAffinityParam;
typedef struct CUctxCreateParams_st CUctxCreateParams;
typedef unsigned long long CUmemGenericAllocationHandle;
typedef int CUdevice_attribute;

#define CU_STREAM_LEGACY ((CUstream)0x1)
#define CU_STREAM_PER_THREAD ((CUstream)0x2)
#define CU_MEM_ATTACH_GLOBAL 0x1
#define CU_MEM_ATTACH_HOST 0x2
#define CU_MEM_ALLOCATION_TYPE_PINNED 0x1
#define CU_MEM_LOCATION_TYPE_DEVICE 0x1
#define CU_MEM_LOCATION_TYPE_HOST 0x2              /* CUDA 12.2+ */
#define CU_MEM_LOCATION_TYPE_HOST_NUMA 0x3
#define CU_MEM_LOCATION_TYPE_HOST_NUMA_CURRENT 0x4

typedef struct CUmemLocation_st {
    int type; /* CUmemLocationType */
    int id;
} CUmemLocation;

typedef struct CUmemAllocationProp_st {
    int type;                 /* CUmemAllocationType */
    int requestedHandleTypes; /* CUmemAllocationHandleType */
    CUmemLocation location;
    void *win32HandleMetaData;
    struct {
        unsigned char compressionType;
        unsigned char gpuDirectRDMACapable;
        unsigned short usage;
        unsigned char reserved[4];
    } allocFlags;
} CUmemAllocationProp;

typedef struct CUmemAccessDesc_st {
    CUmemLocation location;
    int flags; /* CUmemAccess_flags */
} CUmemAccessDesc;

typedef struct CUDA_ARRAY_DESCRIPTOR_st {
    size_t Width;
    size_t Height;
    int Format; /* CUarray_format */
    unsigned int NumChannels;
} CUDA_ARRAY_DESCRIPTOR;

typedef struct CUDA_ARRAY3D_DESCRIPTOR_st {
    size_t Width;
    size_t Height;
    size_t Depth;
    int Format; /* CUarray_format */
    unsigned int NumChannels;
    unsigned int Flags;
} CUDA_ARRAY3D_DESCRIPTOR;

typedef struct CUlaunchConfig_st {
    unsigned int gridDimX, gridDimY, gridDimZ;
    unsigned int blockDimX, blockDimY, blockDimZ;
    unsigned int sharedMemBytes;
    CUstream hStream;
    CUlaunchAttribute *attrs;
    unsigned int numAttrs;
} CUlaunchConfig;

/* An allocation exported to another process (cuIpcGetMemHandle): opaque bytes. */
typedef struct CUipcMemHandle_st {
    char reserved[64];
} CUipcMemHandle;

/* cuMemPoolExportPointer's opaque description of a pool allocation. */
typedef struct CUmemPoolPtrExportData_st {
    unsigned char reserved[64];
} CUmemPoolPtrExportData;

/* One entry of cuLaunchCooperativeKernelMultiDevice (deprecated since CUDA 11.3). */
typedef struct CUDA_LAUNCH_PARAMS_st {
    CUfunction function;
    unsigned int gridDimX, gridDimY, gridDimZ;
    unsigned int blockDimX, blockDimY, blockDimZ;
    unsigned int sharedMemBytes;
    CUstream hStream;
    void **kernelParams;
} CUDA_LAUNCH_PARAMS;

/* CUlimit values that reserve device memory (cuCtxSetLimit). */
#define CU_LIMIT_STACK_SIZE 0x00
#define CU_LIMIT_PRINTF_FIFO_SIZE 0x01
#define CU_LIMIT_MALLOC_HEAP_SIZE 0x02

/* Graph memory-allocation nodes (CUDA 11.4): the memory is made when the graph runs. */
typedef struct CUmemPoolProps_st {
    int allocType;   /* CUmemAllocationType */
    int handleTypes; /* CUmemAllocationHandleType */
    CUmemLocation location;
    void *win32SecurityAttributes;
    size_t maxSize;
    unsigned short usage;
    unsigned char reserved[54];
} CUmemPoolProps;

typedef struct CUDA_MEM_ALLOC_NODE_PARAMS_st {
    CUmemPoolProps poolProps;
    const CUmemAccessDesc *accessDescs;
    size_t accessDescCount;
    size_t bytesize;
    CUdeviceptr dptr; /* out */
} CUDA_MEM_ALLOC_NODE_PARAMS;
_Static_assert(sizeof(CUmemPoolProps) == 88, "CUmemPoolProps_v1 layout");
_Static_assert(sizeof(CUDA_MEM_ALLOC_NODE_PARAMS) == 120, "CUDA_MEM_ALLOC_NODE_PARAMS_v1 layout");

/* CUgraphNodeType values we act on. */
#define CU_GRAPH_NODE_TYPE_MEM_ALLOC 10
#define CU_GRAPH_NODE_TYPE_KERNEL 0
#define CU_GRAPH_NODE_TYPE_GRAPH 4
#define CU_GRAPH_NODE_TYPE_EMPTY 5
#define CU_GRAPH_NODE_TYPE_MEMCPY 1
#define CU_GRAPH_NODE_TYPE_MEMSET 2
#define CU_GRAPH_NODE_TYPE_HOST 3
#define CU_GRAPH_NODE_TYPE_MEM_FREE 11

/* Stream capture (CUstreamCaptureStatus, CUstreamCaptureMode). */
typedef enum CUstreamCaptureStatus_enum {
    CU_STREAM_CAPTURE_STATUS_NONE = 0,
    CU_STREAM_CAPTURE_STATUS_ACTIVE = 1,
    CU_STREAM_CAPTURE_STATUS_INVALIDATED = 2
} CUstreamCaptureStatus;
typedef enum CUstreamCaptureMode_enum {
    CU_STREAM_CAPTURE_MODE_GLOBAL = 0,
    CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1,
    CU_STREAM_CAPTURE_MODE_RELAXED = 2
} CUstreamCaptureMode;
#define CU_STREAM_NON_BLOCKING 0x1
/* CUgraphEdgeData (CUDA 12.3): ports and type of a dependency edge; all zero = full completion. */
typedef struct CUgraphEdgeData_st {
    unsigned char from_port, to_port, type, reserved[5];
} CUgraphEdgeData;

/* CUDA_KERNEL_NODE_PARAMS (v1, CUDA 10) and _v2 (CUDA 12: v1 + kern + ctx). */
typedef struct CUDA_KERNEL_NODE_PARAMS_st {
    CUfunction func;
    unsigned int gridDimX, gridDimY, gridDimZ;
    unsigned int blockDimX, blockDimY, blockDimZ;
    unsigned int sharedMemBytes;
    void **kernelParams;
    void **extra;
} CUDA_KERNEL_NODE_PARAMS;

typedef struct CUDA_KERNEL_NODE_PARAMS_v2_st {
    CUfunction func;
    unsigned int gridDimX, gridDimY, gridDimZ;
    unsigned int blockDimX, blockDimY, blockDimZ;
    unsigned int sharedMemBytes;
    void **kernelParams;
    void **extra;
    CUkernel kern;
    CUcontext ctx;
} CUDA_KERNEL_NODE_PARAMS_v2;

typedef struct CUDA_GRAPH_INSTANTIATE_PARAMS_st {
    cuuint64_t flags;
    CUstream hUploadStream;
    CUgraphNode hErrNode_out;
    int result_out; /* CUgraphInstantiateResult */
} CUDA_GRAPH_INSTANTIATE_PARAMS;

/* Bytes per element of a CUarray_format, 0 for formats we do not know (block-compressed,
 * packed video formats): callers treat those conservatively. */
static inline unsigned int tf_array_format_bytes(int format) {
    switch (format) {
    case 0x01: case 0x08: return 1;             /* UNSIGNED_INT8, SIGNED_INT8 */
    case 0x02: case 0x09: case 0x10: return 2;  /* UNSIGNED_INT16, SIGNED_INT16, HALF */
    case 0x03: case 0x0a: case 0x20: return 4;  /* UNSIGNED_INT32, SIGNED_INT32, FLOAT */
    default: return 0;
    }
}

/* Device bytes of an array (depth 0 = 2D) or, with levels > 1, of a mipmapped array: each
 * level halves every extent down to 1.  Unknown formats count 16 bytes per element (the
 * largest texel), so the estimate never undercounts.  Saturates instead of overflowing. */
static inline uint64_t tf_array_bytes(size_t width, size_t height, size_t depth, int format,
                                      unsigned int channels, unsigned int levels) {
    uint64_t elem = tf_array_format_bytes(format);
    uint64_t total = 0;
    elem = elem == 0 ? 16 : elem * (channels == 0 ? 1 : channels);
    if (levels == 0) levels = 1;
    for (unsigned int l = 0; l < levels && l < 64; l++) {
        uint64_t w = width ? width : 1, h = height ? height : 1, d = depth ? depth : 1;
        unsigned __int128 level = (unsigned __int128)w * h * d * elem;
        total = level > UINT64_MAX - total ? UINT64_MAX : total + (uint64_t)level;
        width = width > 1 ? width / 2 : 1;
        height = height > 1 ? height / 2 : (height ? 1 : 0);
        depth = depth > 1 ? depth / 2 : (depth ? 1 : 0);
    }
    return total;
}

typedef struct CUuuid_st {
    char bytes[16];
} CUuuid;

/* TF_CU_RESULT(name, value, description): every code our C code returns or names. */
#define TF_CU_RESULTS(X)                                                               \
    X(CUDA_SUCCESS, 0, "no error")                                                     \
    X(CUDA_ERROR_INVALID_VALUE, 1, "invalid argument")                                 \
    X(CUDA_ERROR_OUT_OF_MEMORY, 2, "out of memory")                                    \
    X(CUDA_ERROR_NOT_INITIALIZED, 3, "initialization error")                           \
    X(CUDA_ERROR_DEINITIALIZED, 4, "driver shutting down")                             \
    X(CUDA_ERROR_NO_DEVICE, 100, "no CUDA-capable device is detected")                 \
    X(CUDA_ERROR_INVALID_DEVICE, 101, "invalid device ordinal")                        \
    X(CUDA_ERROR_INVALID_IMAGE, 200, "device kernel image is invalid")                 \
    X(CUDA_ERROR_UNSUPPORTED_LIMIT, 215, "limit is not supported on this architecture") \
    X(CUDA_ERROR_INVALID_CONTEXT, 201, "invalid device context")                       \
    X(CUDA_ERROR_FILE_NOT_FOUND, 301, "file not found")                                \
    X(CUDA_ERROR_INVALID_HANDLE, 400, "invalid resource handle")                       \
    X(CUDA_ERROR_NOT_FOUND, 500, "named symbol not found")                             \
    X(CUDA_ERROR_NOT_READY, 600, "device not ready")                                   \
    X(CUDA_ERROR_ILLEGAL_ADDRESS, 700, "an illegal memory access was encountered")     \
    X(CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, 701, "too many resources requested for launch") \
    X(CUDA_ERROR_CONTEXT_IS_DESTROYED, 709, "context is destroyed")                    \
    X(CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED, 712, "part or all of the requested memory range is already mapped") \
    X(CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED, 713, "pointer does not correspond to a registered memory region") \
    X(CUDA_ERROR_NOT_PERMITTED, 800, "operation not permitted")                        \
    X(CUDA_ERROR_NOT_SUPPORTED, 801, "operation not supported")                        \
    X(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, 900, "operation not permitted when stream is capturing") \
    X(CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, 901, "operation failed due to a previous error during capture") \
    X(CUDA_ERROR_STREAM_CAPTURE_MERGE, 902, "operation would result in a merge of separate capture sequences") \
    X(CUDA_ERROR_STREAM_CAPTURE_UNMATCHED, 903, "capture was not ended in the same stream as it began") \
    X(CUDA_ERROR_STREAM_CAPTURE_UNJOINED, 904, "capturing stream has unjoined work")   \
    X(CUDA_ERROR_STREAM_CAPTURE_ISOLATION, 905, "dependency created on uncaptured work in another stream") \
    X(CUDA_ERROR_STREAM_CAPTURE_IMPLICIT, 906, "operation would make the legacy stream depend on a capturing blocking stream") \
    X(CUDA_ERROR_CAPTURED_EVENT, 907, "operation not permitted on an event last recorded in a capturing stream") \
    X(CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD, 908, "attempt to terminate a thread-local capture sequence from another thread") \
    X(CUDA_ERROR_UNKNOWN, 999, "unknown error")

typedef enum cudaError_enum {
#define TF_CU_RESULT_ENUM(name, value, text) name = value,
    TF_CU_RESULTS(TF_CU_RESULT_ENUM)
#undef TF_CU_RESULT_ENUM
} CUresult;

/* cuGetProcAddress flags and symbol status. */
#define CU_GET_PROC_ADDRESS_DEFAULT 0
#define CU_GET_PROC_ADDRESS_LEGACY_STREAM (1ULL << 0)
#define CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM (1ULL << 1)

typedef enum CUdriverProcAddressQueryResult_enum {
    CU_GET_PROC_ADDRESS_SUCCESS = 0,
    CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND = 1,
    CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT = 2
} CUdriverProcAddressQueryResult;

/* Function types, named after the cudaTypedefs.h variant they match. */
typedef CUresult (*PFN_cuGetProcAddress_v11030)(const char *symbol, void **pfn, int cudaVersion,
                                                 cuuint64_t flags);
typedef CUresult (*PFN_cuGetProcAddress_v12000)(const char *symbol, void **pfn, int cudaVersion,
                                                 cuuint64_t flags,
                                                 CUdriverProcAddressQueryResult *symbolStatus);
typedef CUresult (*PFN_cuDeviceTotalMem_v2000)(unsigned int *bytes, CUdevice dev);
typedef CUresult (*PFN_cuDeviceTotalMem_v3020)(size_t *bytes, CUdevice dev);
typedef CUresult (*PFN_cuDriverGetVersion_v2020)(int *driverVersion);

#endif /* TF_CUDA_ABI_H */
