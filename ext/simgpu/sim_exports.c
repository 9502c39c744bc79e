/*
 * The driver entry points the simulator implements, for cuGetProcAddress.  One row per
 * exported variant.  Per-thread-default-stream forms (_ptds/_ptsz) resolve to the plain
 * variant: the simulator gives every thread the context's default stream.  Any other known
 * driver function resolves to a stub returning CUDA_ERROR_NOT_SUPPORTED (simcuda.c).
 */
#include <stddef.h>
#include <string.h>

#define SIM_CUDA_EXPORTS(X)                                                                          \
    X(cuInit) X(cuDriverGetVersion) X(cuDeviceGetCount) X(cuDeviceGet) X(cuDeviceGetName)            \
    X(cuDeviceTotalMem) X(cuDeviceTotalMem_v2) X(cuDeviceGetUuid) X(cuDeviceGetUuid_v2)              \
    X(cuDeviceGetAttribute) X(cuGetErrorName) X(cuGetErrorString) X(cuGetExportTable)                \
    X(cuGetProcAddress) X(cuGetProcAddress_v2)                                                       \
    X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease) X(cuDevicePrimaryCtxRelease_v2)         \
    X(cuDevicePrimaryCtxGetState) X(cuDevicePrimaryCtxSetFlags) X(cuDevicePrimaryCtxSetFlags_v2)     \
    X(cuDevicePrimaryCtxReset) X(cuDevicePrimaryCtxReset_v2)                                         \
    X(cuCtxCreate_v2) X(cuCtxCreate_v3) X(cuCtxCreate_v4) X(cuCtxDestroy_v2) X(cuCtxSetCurrent)       \
    X(cuCtxGetCurrent) X(cuCtxPushCurrent_v2) X(cuCtxPopCurrent_v2) X(cuCtxGetDevice)                \
    X(cuCtxGetDevice_v2) X(cuCtxGetApiVersion) X(cuCtxSynchronize) X(cuCtxSynchronize_v2)            \
    X(cuStreamCreate) X(cuStreamCreateWithPriority) X(cuStreamDestroy_v2) X(cuStreamSynchronize)     \
    X(cuStreamQuery) X(cuStreamWaitEvent)                                                            \
    X(cuEventCreate) X(cuEventDestroy_v2) X(cuEventRecord) X(cuEventRecordWithFlags) X(cuEventQuery) \
    X(cuEventSynchronize) X(cuEventElapsedTime) X(cuEventElapsedTime_v2)                             \
    X(cuModuleLoad) X(cuModuleLoadData) X(cuModuleLoadDataEx) X(cuModuleLoadFatBinary)               \
    X(cuModuleUnload) X(cuModuleGetFunction)                                                         \
    X(cuLaunchKernel) X(cuLaunchKernelEx) X(cuLaunchCooperativeKernel)                               \
    X(cuGraphCreate) X(cuGraphAddKernelNode) X(cuGraphAddKernelNode_v2) X(cuGraphAddEmptyNode)       \
    X(cuGraphAddChildGraphNode) X(cuGraphChildGraphNodeGetGraph) X(cuGraphGetNodes)                  \
    X(cuGraphNodeGetType) X(cuGraphKernelNodeGetParams) X(cuGraphKernelNodeGetParams_v2)             \
    X(cuGraphDestroy) X(cuGraphInstantiate) X(cuGraphInstantiate_v2) X(cuGraphInstantiateWithFlags)  \
    X(cuGraphInstantiateWithParams) X(cuGraphExecDestroy) X(cuGraphLaunch)                           \
    X(cuMemAlloc_v2) X(cuMemAllocPitch_v2) X(cuMemAllocManaged) X(cuMemFree_v2)                      \
    X(cuMemAllocAsync) X(cuMemAllocFromPoolAsync) X(cuMemFreeAsync) X(cuDeviceGetDefaultMemPool)     \
    X(cuDeviceGetMemPool) X(cuMemPoolCreate) X(cuMemPoolDestroy)                                     \
    X(cuMemHostAlloc) X(cuMemAllocHost_v2) X(cuMemFreeHost) X(cuMemGetInfo_v2)                       \
    X(cuMemGetAllocationGranularity) X(cuMemCreate) X(cuMemRelease) X(cuMemAddressReserve)           \
    X(cuMemAddressFree) X(cuMemMap) X(cuMemUnmap) X(cuMemSetAccess)                                  \
    X(cuArrayCreate_v2) X(cuArray3DCreate_v2) X(cuArrayDestroy) X(cuMipmappedArrayCreate)            \
    X(cuMipmappedArrayDestroy)                                                                       \
    X(cuMemcpyHtoD_v2) X(cuMemcpyDtoH_v2) X(cuMemcpyDtoD_v2) X(cuMemcpy) X(cuMemcpyHtoDAsync_v2)     \
    X(cuMemcpyDtoHAsync_v2) X(cuMemcpyDtoDAsync_v2) X(cuMemcpyAsync)                                 \
    X(cuMemsetD8_v2) X(cuMemsetD16_v2) X(cuMemsetD32_v2) X(cuMemsetD8Async) X(cuMemsetD16Async)      \
    X(cuMemsetD32Async)                                                                              \
    X(cuModuleGetLoadingMode) X(cuModuleGetGlobal) X(cuModuleGetGlobal_v2) X(cuModuleGetFunctionCount) \
    X(cuLibraryLoadData) X(cuLibraryLoadFromFile) X(cuLibraryUnload) X(cuLibraryGetModule)          \
    X(cuLibraryGetKernel) X(cuLibraryGetKernelCount) X(cuLibraryEnumerateKernels)                   \
    X(cuLibraryGetGlobal) X(cuLibraryGetManaged) X(cuKernelGetFunction) X(cuKernelGetLibrary)       \
    X(cuKernelGetName) X(cuKernelGetAttribute) X(cuKernelSetAttribute) X(cuKernelSetCacheConfig)    \
    X(cuFuncGetAttribute) X(cuFuncSetAttribute) X(cuFuncSetCacheConfig) X(cuFuncSetSharedMemConfig) \
    X(cuFuncGetModule) X(cuFuncGetName) X(cuFuncIsLoaded) X(cuFuncLoad)                             \
    X(cuCtxGetLimit) X(cuCtxSetLimit) X(cuCtxGetCacheConfig) X(cuCtxSetCacheConfig) X(cuCtxGetFlags) \
    X(cuCtxSetFlags) X(cuCtxGetStreamPriorityRange) X(cuCtxGetId)                                    \
    X(cuStreamGetPriority) X(cuStreamGetFlags) X(cuStreamGetCtx) X(cuStreamGetId)                    \
    X(cuOccupancyMaxActiveBlocksPerMultiprocessor) X(cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags) \
    X(cuOccupancyMaxPotentialBlockSize) X(cuOccupancyMaxPotentialBlockSizeWithFlags)                \
    X(cuOccupancyAvailableDynamicSMemPerBlock) X(cuDeviceGetPCIBusId) X(cuDeviceCanAccessPeer)      \
    X(cuDeviceGetP2PAttribute) X(cuMemHostRegister) X(cuMemHostRegister_v2) X(cuMemHostUnregister)      \
    X(cuMemHostGetDevicePointer_v2) X(cuMemHostGetFlags) X(cuProfilerStart) X(cuProfilerStop)         \
    X(cuMemcpy2D_v2) X(cuMemcpy2DUnaligned_v2) X(cuMemcpy2DAsync_v2) X(cuMemsetD2D8_v2)              \
    X(cuMemsetD2D16_v2) X(cuMemsetD2D32_v2) X(cuMemsetD2D8Async) X(cuMemsetD2D16Async)              \
    X(cuMemsetD2D32Async) X(cuMemPrefetchAsync) X(cuMemPrefetchAsync_v2) X(cuMemAdvise)             \
    X(cuMemAdvise_v2) X(cuLaunchHostFunc) X(cuPointerGetAttribute) X(cuPointerGetAttributes)       \
    X(cuMemcpy3D_v2) X(cuMemcpy3DAsync_v2) X(cuStreamAddCallback)                                    \
    X(cuFuncSetBlockShape) X(cuLaunch) X(cuLaunchGrid) X(cuLaunchGridAsync)                           \
    X(cuLaunchCooperativeKernelMultiDevice)                                                          \
    X(cuMemPoolSetAttribute) X(cuMemPoolGetAttribute) X(cuMemPoolTrimTo)                             \
    X(cuGraphAddMemAllocNode) X(cuGraphMemAllocNodeGetParams)                                      \
    X(cuMemGetAddressRange_v2) X(cuIpcGetMemHandle) X(cuIpcOpenMemHandle) X(cuIpcOpenMemHandle_v2)    \
    X(cuIpcCloseMemHandle) X(cuMemExportToShareableHandle) X(cuMemImportFromShareableHandle)          \
    X(cuMemPoolExportToShareableHandle) X(cuMemPoolImportFromShareableHandle) X(cuMemPoolExportPointer) \
    X(cuStreamBeginCapture) X(cuStreamBeginCapture_v2) X(cuStreamBeginCaptureToGraph) X(cuStreamEndCapture) \
    X(cuStreamIsCapturing) X(cuStreamGetCaptureInfo) X(cuStreamGetCaptureInfo_v2)                   \
    X(cuStreamGetCaptureInfo_v3) X(cuThreadExchangeStreamCaptureMode) \
    X(cuMemPoolImportPointer) X(cuMemcpyPeer) X(cuMemcpyPeerAsync) X(cuGraphUpload) X(cuStreamWriteValue32)      \
    X(cuStreamWriteValue64) X(cuStreamWaitValue32) X(cuStreamWaitValue64) X(cuStreamWriteValue32_v2)             \
    X(cuStreamWriteValue64_v2) X(cuStreamWaitValue32_v2) X(cuStreamWaitValue64_v2) X(cuMemcpy3DPeer)              \
    X(cuMemcpy3DPeerAsync) X(cuMemcpyBatchAsync) X(cuMemcpyBatchAsync_v2)

/* Only their addresses are taken here; the definitions (with their real types) are elsewhere. */
#define TF_DECLARE(name) extern void name(void);
SIM_CUDA_EXPORTS(TF_DECLARE)
#undef TF_DECLARE

static const struct {
    const char *name;
    void *impl;
} exports[] = {
#define TF_ROW(name) {#name, (void *)&name},
    SIM_CUDA_EXPORTS(TF_ROW)
#undef TF_ROW
};

static void *exact(const char *symbol, size_t len) {
    for (size_t i = 0; i < sizeof exports / sizeof exports[0]; i++)
        if (strncmp(exports[i].name, symbol, len) == 0 && exports[i].name[len] == '\0') return exports[i].impl;
    return NULL;
}

void *tf_sim_export(const char *symbol);
void *tf_sim_export(const char *symbol) {
    size_t len = strlen(symbol);
    void *impl = exact(symbol, len);
    if (impl == NULL && len > 5 &&
        (strcmp(symbol + len - 5, "_ptds") == 0 || strcmp(symbol + len - 5, "_ptsz") == 0))
        impl = exact(symbol, len - 5);
    return impl;
}
