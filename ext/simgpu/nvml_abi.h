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

#endif /* TF_NVML_ABI_H */
