/* nvml_abi.h - the slice of the NVML ABI the simulated libnvidia-ml.so.1 implements. */
#ifndef TF_NVML_ABI_H
#define TF_NVML_ABI_H

/* TF_NVML_RESULTS(X): X(name, value, text). */
#define TF_NVML_RESULTS(X)                                                                 \
    X(NVML_SUCCESS, 0, "Success")                                                         \
    X(NVML_ERROR_UNINITIALIZED, 1, "Uninitialized")                                       \
    X(NVML_ERROR_INVALID_ARGUMENT, 2, "Invalid Argument")                                 \
    X(NVML_ERROR_NOT_SUPPORTED, 3, "Not Supported")                                       \
    X(NVML_ERROR_NOT_FOUND, 6, "Not Found")                                               \
    X(NVML_ERROR_INSUFFICIENT_SIZE, 7, "Insufficient Size")                               \
    X(NVML_ERROR_FUNCTION_NOT_FOUND, 13, "Function Not Found")                            \
    X(NVML_ERROR_NO_DATA, 21, "No data")                                                  \
    X(NVML_ERROR_ARGUMENT_VERSION_MISMATCH, 25, "Argument version mismatch")              \
    X(NVML_ERROR_UNKNOWN, 999, "Unknown Error")

typedef enum nvmlReturn_enum {
#define TF_NVML_ENUM(name, value, text) name = value,
    TF_NVML_RESULTS(TF_NVML_ENUM)
#undef TF_NVML_ENUM
} nvmlReturn_t;

typedef struct nvmlDevice_st *nvmlDevice_t;

typedef struct nvmlMemory_st {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

typedef struct nvmlMemory_v2_st {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;
#define nvmlMemory_v2 (unsigned int)(sizeof(nvmlMemory_v2_t) | (2 << 24U))

typedef struct nvmlProcessInfo_st { /* the v2/v3 layout */
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_t;

typedef struct nvmlProcessInfo_v1_st {
    unsigned int pid;
    unsigned long long usedGpuMemory;
} nvmlProcessInfo_v1_t;

typedef struct nvmlUtilization_st {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

typedef struct nvmlProcessUtilizationSample_st {
    unsigned int pid;
    unsigned long long timeStamp; /* CLOCK_REALTIME, microseconds */
    unsigned int smUtil;
    unsigned int memUtil;
    unsigned int encUtil;
    unsigned int decUtil;
} nvmlProcessUtilizationSample_t;

#endif /* TF_NVML_ABI_H */
