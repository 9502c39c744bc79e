/*
 * Compute admission of the shim: the slow paths of tf_launch_admit (shim.h) and the launch
 * costs of graph executables.  The bucket is described in tf/compute.h.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "shim.h"
#include "tf/compute.h"

static __attribute__((noinline, cold)) void launch_wait(int dev, uint64_t ticket);

void tf_launch_admit(uint64_t cost) {
    if (__builtin_expect(!__atomic_load_n(tf_region_loaded_flag, __ATOMIC_ACQUIRE), 0)) (void)tf_region_active();
    int ok, launch_mode = __atomic_load_n(&tf_launch_mode, __ATOMIC_RELAXED);
    if (launch_mode == TF_LAUNCH_PASS) return;
    int dev = launch_mode == TF_LAUNCH_ONE_DEVICE ? 0 : tf_region_current_device(&ok);
    if (dev < 0 || __atomic_load_n(&tf_compute_limits->devices[dev].compute_rate, __ATOMIC_RELAXED) == 0) return;
    tf_shm_usage *u = &tf_compute_state->usage[dev];
    uint64_t ticket = __atomic_add_fetch(&u->compute_consumed, cost, __ATOMIC_ACQ_REL); /* the one atomic */
    /* Within the tokens granted, and within the hypervisor's ceiling (read-only to the tenant;
     * 0 = not policed): the state file's granted counter alone is the tenant's to write. */
    uint64_t ceiling = __atomic_load_n(&tf_compute_limits->devices[dev].compute_ceiling, __ATOMIC_RELAXED);
    if (__builtin_expect((int64_t)(ticket - __atomic_load_n(&u->compute_granted, __ATOMIC_ACQUIRE)) > 0 ||
                             (ceiling != 0 && (int64_t)(ticket - ceiling) > 0),
                         0))
        launch_wait(dev, ticket);
    __atomic_add_fetch(&u->compute_launches, 1, __ATOMIC_RELAXED); /* statistics */
}

/* Waits until the tokens granted reach ticket: sleeps for the time the deficit needs at the
 * current rate (at most TF_COMPUTE_WAIT_CAP_NS), refills, re-checks.  Each sleep is bounded;
 * a rate change wakes it at once; rate 0 lets it go. */
static void launch_wait(int dev, uint64_t ticket) {
    const tf_shm_limit *lim = &tf_compute_limits->devices[dev];
    tf_shm_usage *u = &tf_compute_state->usage[dev];
    uint64_t start = 0;
    for (;;) {
        uint32_t seen = __atomic_load_n(&u->compute_futex, __ATOMIC_ACQUIRE);
        uint64_t rate = __atomic_load_n(&lim->compute_rate, __ATOMIC_ACQUIRE);
        if (rate == 0) break;
        uint64_t now = tf_compute_now_ns(), burst = __atomic_load_n(&lim->compute_burst, __ATOMIC_ACQUIRE);
        tf_compute_refill(u, rate, burst, now);
        uint64_t granted = __atomic_load_n(&u->compute_granted, __ATOMIC_ACQUIRE);
        if (__atomic_load_n(&lim->compute_ceiling, __ATOMIC_ACQUIRE) != 0) {
            uint64_t allowed = tf_compute_allowed(lim, rate, burst, now); /* past the ceiling: extrapolate */
            if ((int64_t)(granted - allowed) > 0) granted = allowed;
        }
        int64_t deficit = (int64_t)(ticket - granted);
        if (deficit <= 0) break;
        if (start == 0) start = now;
        unsigned __int128 ns = ((unsigned __int128)(uint64_t)deficit * 1000000000u + rate - 1) / rate;
        tf_compute_futex_wait(&u->compute_futex, seen, ns > TF_COMPUTE_WAIT_CAP_NS ? TF_COMPUTE_WAIT_CAP_NS : (uint64_t)ns);
    }
    if (start != 0) {
        __atomic_add_fetch(&u->compute_throttled, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&u->compute_waited_ns, tf_compute_now_ns() - start, __ATOMIC_RELAXED);
    }
}

/* ---- graphs: cost = sum over kernel nodes (child graphs included), once per executable ---- */

typedef CUresult (*get_nodes_fn)(CUgraph, CUgraphNode *, size_t *);
typedef CUresult (*node_type_fn)(CUgraphNode, int *);
typedef CUresult (*kernel_params_fn)(CUgraphNode, CUDA_KERNEL_NODE_PARAMS_v2 *);
typedef CUresult (*child_graph_fn)(CUgraphNode, CUgraph *);

/* Deeper than this, a graph costs the most a launch can (fail closed), never nothing. */
#define TF_GRAPH_MAX_DEPTH 256

static uint64_t graph_cost(CUgraph graph, int depth) {
    static get_nodes_fn get_nodes;
    static node_type_fn node_type;
    static kernel_params_fn kernel_params;
    static child_graph_fn child_graph;
    if (__atomic_load_n(&get_nodes, __ATOMIC_ACQUIRE) == NULL) { /* racing first calls store the same values */
        /* Asked for at CUDA 12.0: the _v2 kernel-node params (a superset of v1's layout). */
        __atomic_store_n(&child_graph, (child_graph_fn)tf_driver_helper("cuGraphChildGraphNodeGetGraph"), __ATOMIC_RELAXED);
        __atomic_store_n(&kernel_params, (kernel_params_fn)tf_driver_helper("cuGraphKernelNodeGetParams"), __ATOMIC_RELAXED);
        __atomic_store_n(&node_type, (node_type_fn)tf_driver_helper("cuGraphNodeGetType"), __ATOMIC_RELAXED);
        __atomic_store_n(&get_nodes, (get_nodes_fn)tf_driver_helper("cuGraphGetNodes"), __ATOMIC_RELEASE);
    }
    if (get_nodes == NULL || node_type == NULL || kernel_params == NULL || depth > TF_GRAPH_MAX_DEPTH)
        return TF_COMPUTE_COST_MAX; /* cannot price it: never free */
    size_t count = 0;
    if (get_nodes(graph, NULL, &count) != CUDA_SUCCESS || count == 0) return 0;
    CUgraphNode *nodes = calloc(count, sizeof *nodes);
    if (nodes == NULL) return TF_COMPUTE_COST_MAX;
    uint64_t total = 0;
    if (get_nodes(graph, nodes, &count) == CUDA_SUCCESS) {
        for (size_t i = 0; i < count; i++) {
            int type = -1;
            if (node_type(nodes[i], &type) != CUDA_SUCCESS) continue;
            uint64_t cost = 0;
            if (type == CU_GRAPH_NODE_TYPE_KERNEL) {
                CUDA_KERNEL_NODE_PARAMS_v2 p = {0};
                if (kernel_params(nodes[i], &p) == CUDA_SUCCESS)
                    cost = tf_launch_cost(p.gridDimX, p.gridDimY, p.gridDimZ, p.blockDimX, p.blockDimY, p.blockDimZ);
            } else if (type == CU_GRAPH_NODE_TYPE_GRAPH && child_graph != NULL) {
                CUgraph child = NULL;
                if (child_graph(nodes[i], &child) == CUDA_SUCCESS) cost = graph_cost(child, depth + 1);
            }
            total = total + cost < total || total + cost > TF_COMPUTE_COST_MAX ? TF_COMPUTE_COST_MAX : total + cost;
        }
    }
    free(nodes);
    return total;
}

/* Bytes a graph's memory-allocation nodes make when it runs (child graphs included), and the
 * CUDA ordinal of the first one's device; UINT64_MAX when they cannot be read (never free). */
static uint64_t graph_memory(CUgraph graph, int depth, int *ordinal) {
    typedef CUresult (*alloc_params_fn)(CUgraphNode, CUDA_MEM_ALLOC_NODE_PARAMS *);
    get_nodes_fn get_nodes = (get_nodes_fn)tf_driver_helper("cuGraphGetNodes");
    node_type_fn node_type = (node_type_fn)tf_driver_helper("cuGraphNodeGetType");
    child_graph_fn child_graph = (child_graph_fn)tf_driver_helper("cuGraphChildGraphNodeGetGraph");
    alloc_params_fn alloc_params = (alloc_params_fn)tf_driver_helper("cuGraphMemAllocNodeGetParams");
    if (get_nodes == NULL || node_type == NULL || depth > TF_GRAPH_MAX_DEPTH) return UINT64_MAX;
    size_t count = 0;
    if (get_nodes(graph, NULL, &count) != CUDA_SUCCESS || count == 0) return 0;
    CUgraphNode *nodes = calloc(count, sizeof *nodes);
    if (nodes == NULL) return UINT64_MAX;
    uint64_t total = 0;
    if (get_nodes(graph, nodes, &count) == CUDA_SUCCESS) {
        for (size_t i = 0; i < count && total != UINT64_MAX; i++) {
            int type = -1;
            uint64_t bytes = 0;
            if (node_type(nodes[i], &type) != CUDA_SUCCESS) continue;
            if (type == CU_GRAPH_NODE_TYPE_MEM_ALLOC) {
                CUDA_MEM_ALLOC_NODE_PARAMS p;
                memset(&p, 0, sizeof p);
                if (alloc_params == NULL || alloc_params(nodes[i], &p) != CUDA_SUCCESS) {
                    bytes = UINT64_MAX;
                } else {
                    bytes = p.bytesize;
                    if (*ordinal < 0) *ordinal = p.poolProps.location.id;
                }
            } else if (type == CU_GRAPH_NODE_TYPE_GRAPH && child_graph != NULL) {
                CUgraph child = NULL;
                if (child_graph(nodes[i], &child) == CUDA_SUCCESS) bytes = graph_memory(child, depth + 1, ordinal);
            }
            total = UINT64_MAX - total < bytes ? UINT64_MAX : total + bytes;
        }
    }
    free(nodes);
    return total;
}

/* The launch cost is recorded; the memory its allocation nodes make is charged now, at its
 * worst case (every node's bytes), until the executable is destroyed: the driver makes it at
 * the first launch and its graph pool keeps it.  Denied: the caller destroys the executable. */
int tf_graph_instantiated(CUgraphExec exec, CUgraph graph) {
    if (exec == NULL || tf_region_active() != TF_ADMIT_OK) return TF_ADMIT_PASS;
    tf_track(TF_GRAPH_COST, (uint64_t)(uintptr_t)exec, graph_cost(graph, 0), -1);
    int ordinal = -1;
    uint64_t bytes = graph_memory(graph, 0, &ordinal);
    if (bytes == 0) return TF_ADMIT_OK;
    int ok = 1, dev = ordinal >= 0 ? tf_region_device(ordinal) : tf_region_current_device(&ok);
    if (bytes == UINT64_MAX || ok <= 0 || tf_admit(dev, bytes) != TF_ADMIT_OK) {
        tf_graph_destroyed(exec);
        return TF_ADMIT_DENY;
    }
    tf_track(TF_GRAPH_MEMORY, (uint64_t)(uintptr_t)exec, bytes, dev);
    return TF_ADMIT_OK;
}

void tf_graph_destroyed(CUgraphExec exec) {
    uint64_t bytes;
    int dev;
    (void)tf_untrack(TF_GRAPH_COST, (uint64_t)(uintptr_t)exec, &bytes, &dev);
    if (tf_untrack(TF_GRAPH_MEMORY, (uint64_t)(uintptr_t)exec, &bytes, &dev)) tf_release(dev, bytes);
}

uint64_t tf_graph_cost(CUgraphExec exec) {
    uint64_t cost = 0;
    return tf_lookup(TF_GRAPH_COST, (uint64_t)(uintptr_t)exec, &cost) ? cost : 0;
}
