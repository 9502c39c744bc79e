/* Kernel launches for the compute-admission tests, through every launch path.
 *
 * Usage:
 *   launcher PATH SECONDS GRID     launch kernels of GRID x 256 threads for SECONDS, then
 *                                  print launches=N and cost_each=C
 *   launcher step GRID             per stdin line: one cuLaunchKernel, then print t=<ns>
 *                                  (CLOCK_MONOTONIC when the launch returned)
 *   launcher tamper LIMITS SECONDS GRID
 *                                  try to open the limits file for writing (prints
 *                                  open_rdwr=<strerror>), then launch like `kernel`
 * PATH: kernel | ex | coop | graph (two kernel nodes, and a child graph with one more) |
 *       deep (one kernel node at the bottom of child graphs nested 12 deep) |
 *       grid | gridasync | launch (cuFuncSetBlockShape(256) then cuLaunchGrid(GRID, 1),
 *       cuLaunchGridAsync, cuLaunch: a 1x1 grid) | multidevice (cuLaunchCooperativeKernelMultiDevice).
 * LAUNCHER_DEVICE=N launches on CUDA device N (default 0). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "driver.h"

FN(cuModuleLoadData, CUresult, (CUmodule *, const void *));
FN(cuModuleGetFunction, CUresult, (CUfunction *, CUmodule, const char *));
FN(cuLaunchKernel, CUresult,
   (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **, void **));
FN(cuLaunchCooperativeKernel, CUresult,
   (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **));
FN(cuLaunchKernelEx, CUresult, (const CUlaunchConfig *, CUfunction, void **, void **));
FN(cuGraphCreate, CUresult, (CUgraph *, unsigned));
FN(cuGraphAddKernelNode, CUresult, (CUgraphNode *, CUgraph, const CUgraphNode *, size_t, const CUDA_KERNEL_NODE_PARAMS_v2 *));
FN(cuGraphAddChildGraphNode, CUresult, (CUgraphNode *, CUgraph, const CUgraphNode *, size_t, CUgraph));
FN(cuGraphInstantiate, CUresult, (CUgraphExec *, CUgraph, unsigned long long));
FN(cuGraphLaunch, CUresult, (CUgraphExec, CUstream));
FN(cuGraphExecDestroy, CUresult, (CUgraphExec));
FN(cuStreamSynchronize, CUresult, (CUstream));
FN(cuFuncSetBlockShape, CUresult, (CUfunction, int, int, int));
FN(cuLaunch, CUresult, (CUfunction));
FN(cuLaunchGrid, CUresult, (CUfunction, int, int));
FN(cuLaunchGridAsync, CUresult, (CUfunction, int, int, CUstream));
FN(cuLaunchCooperativeKernelMultiDevice, CUresult, (CUDA_LAUNCH_PARAMS *, unsigned int, unsigned int));

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static CUfunction fn;
static CUgraphExec exec;
static unsigned grid;

static CUgraphExec build_graph(void) {
    CUgraph g, child;
    CUgraphNode node;
    CUDA_KERNEL_NODE_PARAMS_v2 p = {.func = fn, .gridDimX = grid, .gridDimY = 1, .gridDimZ = 1,
                                    .blockDimX = 256, .blockDimY = 1, .blockDimZ = 1};
    CUgraphExec e = NULL;
    if (cuGraphCreate(&g, 0) || cuGraphCreate(&child, 0) || cuGraphAddKernelNode(&node, g, NULL, 0, &p) ||
        cuGraphAddKernelNode(&node, g, &node, 1, &p) || cuGraphAddKernelNode(&node, child, NULL, 0, &p) ||
        cuGraphAddChildGraphNode(&node, g, &node, 0, child) || cuGraphInstantiate(&e, g, 0)) {
        printf("error=graph setup failed\n");
        exit(4);
    }
    return e;
}

/* One kernel node inside `depth` levels of child graphs. */
static CUgraphExec build_deep(int depth) {
    CUgraph inner, outer;
    CUgraphNode node;
    CUDA_KERNEL_NODE_PARAMS_v2 p = {.func = fn, .gridDimX = grid, .gridDimY = 1, .gridDimZ = 1,
                                    .blockDimX = 256, .blockDimY = 1, .blockDimZ = 1};
    CUgraphExec e = NULL;
    if (cuGraphCreate(&inner, 0) || cuGraphAddKernelNode(&node, inner, NULL, 0, &p)) exit(4);
    for (int i = 0; i < depth; i++) {
        if (cuGraphCreate(&outer, 0) || cuGraphAddChildGraphNode(&node, outer, NULL, 0, inner)) exit(4);
        inner = outer;
    }
    if (cuGraphInstantiate(&e, inner, 0)) {
        printf("error=deep graph setup failed\n");
        exit(4);
    }
    return e;
}

static CUresult launch(const char *path) {
    if (strcmp(path, "kernel") == 0) return cuLaunchKernel(fn, grid, 1, 1, 256, 1, 1, 0, NULL, NULL, NULL);
    if (strcmp(path, "coop") == 0) return cuLaunchCooperativeKernel(fn, grid, 1, 1, 256, 1, 1, 0, NULL, NULL);
    if (strcmp(path, "ex") == 0) {
        CUlaunchConfig c = {.gridDimX = grid, .gridDimY = 1, .gridDimZ = 1, .blockDimX = 256, .blockDimY = 1,
                            .blockDimZ = 1};
        return cuLaunchKernelEx(&c, fn, NULL, NULL);
    }
    if (strcmp(path, "grid") == 0) return cuLaunchGrid(fn, (int)grid, 1);
    if (strcmp(path, "gridasync") == 0) return cuLaunchGridAsync(fn, (int)grid, 1, NULL);
    if (strcmp(path, "launch") == 0) return cuLaunch(fn);
    if (strcmp(path, "multidevice") == 0) {
        CUDA_LAUNCH_PARAMS p = {.function = fn, .gridDimX = grid, .gridDimY = 1, .gridDimZ = 1, .blockDimX = 256,
                                .blockDimY = 1, .blockDimZ = 1};
        return cuLaunchCooperativeKernelMultiDevice(&p, 1, 0);
    }
    return cuGraphLaunch(exec, NULL);
}

int main(int argc, char **argv) {
    if (argc < 3) return 64;
    int step = strcmp(argv[1], "step") == 0, tamper = strcmp(argv[1], "tamper") == 0;
    const char *path = step || tamper ? "kernel" : argv[1];
    if (tamper) {
        int fd = open(argv[2], O_RDWR);
        printf("open_rdwr=%s\n", fd < 0 ? strerror(errno) : "opened");
        argv += 1;
        argc -= 1;
    }
    grid = (unsigned)atoi(argv[step ? 2 : 3]);
    const char *device = getenv("LAUNCHER_DEVICE");
    open_driver(device != NULL ? atoi(device) : 0);
    LOAD(cuModuleLoadData);
    LOAD(cuModuleGetFunction);
    LOAD(cuLaunchKernel);
    LOAD(cuLaunchCooperativeKernel);
    LOAD(cuLaunchKernelEx);
    LOAD(cuGraphCreate);
    LOAD(cuGraphAddKernelNode);
    LOAD(cuGraphAddChildGraphNode);
    LOAD(cuGraphInstantiate);
    LOAD(cuGraphLaunch);
    LOAD(cuGraphExecDestroy);
    LOAD(cuStreamSynchronize);
    LOAD(cuFuncSetBlockShape);
    LOAD(cuLaunch);
    LOAD(cuLaunchGrid);
    LOAD(cuLaunchGridAsync);
    LOAD(cuLaunchCooperativeKernelMultiDevice);
    CUmodule mod;
    cuModuleLoadData(&mod, BUSY_PTX);
    cuModuleGetFunction(&fn, mod, "busy");
    uint64_t cost_each = (uint64_t)grid * 256;
    if (strcmp(path, "graph") == 0) {
        exec = build_graph();
        cost_each *= 3;
    }
    if (strcmp(path, "deep") == 0) exec = build_deep(12);
    cuFuncSetBlockShape(fn, 256, 1, 1);
    if (strcmp(path, "launch") == 0) cost_each = 256;
    printf("ready=1\n");
    fflush(stdout);
    if (step) {
        char line[64];
        while (fgets(line, sizeof line, stdin) != NULL) {
            CUresult rc = launch(path);
            printf("t=%llu rc=%d\n", (unsigned long long)now_ns(), rc);
            fflush(stdout);
        }
        return 0;
    }
    uint64_t end = now_ns() + (uint64_t)(atof(argv[2]) * 1e9), n = 0;
    while (now_ns() < end) {
        CUresult rc = launch(path);
        if (rc != CUDA_SUCCESS) {
            printf("error=launch %d\n", rc);
            return 5;
        }
        n++;
    }
    cuStreamSynchronize(NULL);
    if (exec != NULL) cuGraphExecDestroy(exec);
    printf("launches=%llu\ncost_each=%llu\n", (unsigned long long)n, (unsigned long long)cost_each);
    return 0;
}
