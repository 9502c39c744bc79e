/*
 * Simulated CUDA graphs: kernel nodes, child-graph nodes and empty nodes; instantiate, launch,
 * destroy.  SIMULATED: an executable graph is its kernels flattened in insertion order; a
 * launch puts them on the stream one after another, on the device timeline like any launch
 * (the device runs one kernel at a time, so the dependency edges change nothing there).
 * Node dependencies are accepted and not tracked.
 *
 * Memory-allocation nodes (cuGraphAddMemAllocNode) get their address when added and their
 * memory when the executable first runs, from the device's graph memory pool, which keeps it
 * until the executable is destroyed.  SIMULATED: no cuDeviceGraphMemTrim; the address is
 * reserved, not readable through the simulator's copies (a captured copy or memset that
 * touches it moves no bytes).
 *
 * Stream capture (sim_capture.c) adds nodes here too: kernels, copies, memsets, host
 * functions, memory allocation and free nodes, child graphs (a graph launched into a
 * capturing stream).  An executable runs them in insertion order on the launch stream.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "sim_cuda.h"

#define TF_GRAPH_MAGIC 0x48505247u
#define TF_NODE_MAGIC 0x45444f4eu
#define TF_EXEC_MAGIC 0x43584547u
#define TF_GRAPH_DEPTH 256 /* the driver documents no nesting limit; this only bounds recursion */

struct CUgraphNode_st {
    uint32_t magic;
    int type;
    CUDA_KERNEL_NODE_PARAMS_v2 kernel;
    CUgraph child; /* the node's own copy (CUDA clones the child graph) */
    CUDA_MEM_ALLOC_NODE_PARAMS alloc; /* a memory-allocation node's parameters, dptr set */
    tf_graph_op op; /* a captured copy, memset, host function or free */
};

struct CUgraph_st {
    uint32_t magic;
    size_t count, cap;
    CUgraphNode *nodes;
};

/* One step of an executable: a kernel (its dimensions) or a captured operation. */
typedef struct tf_graph_step {
    int type;
    unsigned int grid[3], block[3];
    tf_graph_op op;
} tf_graph_step;

struct CUgraphExec_st {
    uint32_t magic;
    size_t count, cap;
    tf_graph_step *steps;
    uint64_t memory;   /* bytes its memory-allocation nodes make when it runs */
    int physical;      /* device they are made on */
    int memory_made;   /* it ran: the memory is charged until it is destroyed */
    CUgraph source;    /* a copy of the graph it came from (launched into a capture: a child node) */
};

static int valid_graph(CUgraph g) { return g != NULL && g->magic == TF_GRAPH_MAGIC; }
static int valid_node(CUgraphNode n) { return n != NULL && n->magic == TF_NODE_MAGIC; }

TF_SIM_API CUresult cuGraphCreate(CUgraph *graph, unsigned int flags) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (graph == NULL || flags != 0) return CUDA_ERROR_INVALID_VALUE;
    CUgraph g = calloc(1, sizeof *g);
    if (g == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    g->magic = TF_GRAPH_MAGIC;
    *graph = g;
    return CUDA_SUCCESS;
}

static CUresult add_node(CUgraphNode *out, CUgraph g, int type, const CUDA_KERNEL_NODE_PARAMS_v2 *k, CUgraph child) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (out == NULL || !valid_graph(g)) return CUDA_ERROR_INVALID_VALUE;
    if (g->count == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 8;
        CUgraphNode *nodes = realloc(g->nodes, cap * sizeof *nodes);
        if (nodes == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
        g->nodes = nodes;
        g->cap = cap;
    }
    CUgraphNode n = calloc(1, sizeof *n);
    if (n == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    n->magic = TF_NODE_MAGIC;
    n->type = type;
    if (k != NULL) n->kernel = *k;
    n->child = child;
    g->nodes[g->count++] = n;
    *out = n;
    return CUDA_SUCCESS;
}

static CUresult add_kernel(CUgraphNode *out, CUgraph g, const CUDA_KERNEL_NODE_PARAMS_v2 *k) {
    /* A node names its kernel by func or (CUDA 12+, as the runtime does) by kern. */
    if (k->func == NULL && k->kern == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (!tf_function_valid(k->func != NULL ? k->func : (CUfunction)k->kern)) return CUDA_ERROR_INVALID_HANDLE;
    if (k->gridDimX == 0 || k->gridDimY == 0 || k->gridDimZ == 0 || k->blockDimX == 0 || k->blockDimY == 0 ||
        k->blockDimZ == 0 || (uint64_t)k->blockDimX * k->blockDimY * k->blockDimZ > 1024)
        return CUDA_ERROR_INVALID_VALUE;
    return add_node(out, g, CU_GRAPH_NODE_TYPE_KERNEL, k, NULL);
}

TF_SIM_API CUresult cuGraphAddKernelNode(CUgraphNode *node, CUgraph g, const CUgraphNode *deps, size_t ndeps,
                                         const CUDA_KERNEL_NODE_PARAMS *p) {
    (void)deps;
    (void)ndeps;
    if (p == NULL) return CUDA_ERROR_INVALID_VALUE;
    CUDA_KERNEL_NODE_PARAMS_v2 k = {0};
    memcpy(&k, p, sizeof *p); /* v2 starts with v1's fields */
    return add_kernel(node, g, &k);
}

TF_SIM_API CUresult cuGraphAddKernelNode_v2(CUgraphNode *node, CUgraph g, const CUgraphNode *deps, size_t ndeps,
                                            const CUDA_KERNEL_NODE_PARAMS_v2 *p) {
    (void)deps;
    (void)ndeps;
    if (p == NULL) return CUDA_ERROR_INVALID_VALUE;
    return add_kernel(node, g, p);
}

/* Addresses handed out by memory-allocation nodes (their VA stays reserved for the process's
 * life): a free node, or a free outside any graph, must name one of them. */
static pthread_mutex_t allocations_lock = PTHREAD_MUTEX_INITIALIZER;
static struct graph_allocation {
    CUdeviceptr start;
    uint64_t size;
} *allocations;
static size_t allocation_count, allocation_cap;

static int remember_allocation(CUdeviceptr start, uint64_t size) {
    pthread_mutex_lock(&allocations_lock);
    int ok = 1;
    if (allocation_count == allocation_cap) {
        size_t cap = allocation_cap ? allocation_cap * 2 : 16;
        struct graph_allocation *grown = realloc(allocations, cap * sizeof *grown);
        if (grown == NULL) ok = 0;
        else allocations = grown, allocation_cap = cap;
    }
    if (ok) allocations[allocation_count++] = (struct graph_allocation){start, size};
    pthread_mutex_unlock(&allocations_lock);
    return ok;
}

int tf_graph_allocation(CUdeviceptr ptr, int exact) {
    int found = 0;
    pthread_mutex_lock(&allocations_lock);
    for (size_t i = 0; i < allocation_count && !found; i++)
        found = exact ? allocations[i].start == ptr : ptr >= allocations[i].start && ptr - allocations[i].start < allocations[i].size;
    pthread_mutex_unlock(&allocations_lock);
    return found;
}

TF_SIM_API CUresult cuGraphAddMemAllocNode(CUgraphNode *node, CUgraph g, const CUgraphNode *deps, size_t ndeps,
                                           CUDA_MEM_ALLOC_NODE_PARAMS *p) {
    (void)deps;
    (void)ndeps;
    if (node == NULL || p == NULL || p->bytesize == 0 || p->poolProps.location.type != CU_MEM_LOCATION_TYPE_DEVICE)
        return CUDA_ERROR_INVALID_VALUE;
    if (tf_physical(p->poolProps.location.id) < 0) return CUDA_ERROR_INVALID_DEVICE;
    void *va = mmap(NULL, p->bytesize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (va == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
    CUgraphNode n = NULL;
    CUresult rc = add_node(&n, g, CU_GRAPH_NODE_TYPE_MEM_ALLOC, NULL, NULL);
    if (rc == CUDA_SUCCESS && !remember_allocation((CUdeviceptr)(uintptr_t)va, p->bytesize)) rc = CUDA_ERROR_OUT_OF_MEMORY;
    if (rc != CUDA_SUCCESS) {
        munmap(va, p->bytesize);
        if (n != NULL) g->count--, free(n);
        return rc;
    }
    p->dptr = (CUdeviceptr)(uintptr_t)va;
    n->alloc = *p;
    *node = n;
    return CUDA_SUCCESS;
}

/* A node recorded by stream capture (sim_capture.c) into *out: kernels, allocations and child
 * graphs through the same paths as the explicit API; copies, memsets, host functions and frees
 * as operations the executable performs. */
CUresult tf_graph_add_captured(CUgraph g, const tf_graph_op *op, CUgraphNode *out) {
    if (op->type == CU_GRAPH_NODE_TYPE_KERNEL) return add_kernel(out, g, &op->kernel);
    if (op->type == CU_GRAPH_NODE_TYPE_MEM_ALLOC) {
        CUDA_MEM_ALLOC_NODE_PARAMS p = op->alloc;
        CUresult rc = cuGraphAddMemAllocNode(out, g, NULL, 0, &p);
        if (rc == CUDA_SUCCESS && op->dptr_out != NULL) *op->dptr_out = p.dptr;
        return rc;
    }
    if (op->type == CU_GRAPH_NODE_TYPE_GRAPH) {
        const struct CUgraphExec_st *e = op->exec;
        if (e == NULL || e->magic != TF_EXEC_MAGIC || e->source == NULL) return CUDA_ERROR_INVALID_VALUE;
        return cuGraphAddChildGraphNode(out, g, NULL, 0, e->source);
    }
    if (op->type == CU_GRAPH_NODE_TYPE_MEM_FREE && !tf_graph_allocation(op->dptr, 1)) return CUDA_ERROR_INVALID_VALUE;
    CUgraphNode n = NULL;
    CUresult rc = add_node(&n, g, op->type, NULL, NULL);
    if (rc != CUDA_SUCCESS) return rc;
    n->op = *op;
    n->op.dptr_out = NULL;
    *out = n;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuGraphMemAllocNodeGetParams(CUgraphNode node, CUDA_MEM_ALLOC_NODE_PARAMS *p) {
    if (!valid_node(node) || node->type != CU_GRAPH_NODE_TYPE_MEM_ALLOC || p == NULL) return CUDA_ERROR_INVALID_VALUE;
    *p = node->alloc;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuGraphAddEmptyNode(CUgraphNode *node, CUgraph g, const CUgraphNode *deps, size_t ndeps) {
    (void)deps;
    (void)ndeps;
    return add_node(node, g, CU_GRAPH_NODE_TYPE_EMPTY, NULL, NULL);
}

static CUresult clone_graph(CUgraph src, CUgraph *out, int depth);

TF_SIM_API CUresult cuGraphAddChildGraphNode(CUgraphNode *node, CUgraph g, const CUgraphNode *deps, size_t ndeps,
                                             CUgraph child) {
    (void)deps;
    (void)ndeps;
    if (!valid_graph(child) || !valid_graph(g) || child == g) return CUDA_ERROR_INVALID_VALUE;
    CUgraph copy = NULL;
    CUresult rc = clone_graph(child, &copy, 0);
    if (rc != CUDA_SUCCESS) return rc;
    return add_node(node, g, CU_GRAPH_NODE_TYPE_GRAPH, NULL, copy);
}

TF_SIM_API CUresult cuGraphChildGraphNodeGetGraph(CUgraphNode node, CUgraph *graph) {
    if (!valid_node(node) || node->type != CU_GRAPH_NODE_TYPE_GRAPH || graph == NULL) return CUDA_ERROR_INVALID_VALUE;
    *graph = node->child;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuGraphGetNodes(CUgraph g, CUgraphNode *nodes, size_t *count) {
    if (!valid_graph(g) || count == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (nodes == NULL) {
        *count = g->count;
        return CUDA_SUCCESS;
    }
    size_t n = *count < g->count ? *count : g->count;
    memcpy(nodes, g->nodes, n * sizeof *nodes);
    for (size_t i = n; i < *count; i++) nodes[i] = NULL;
    *count = n;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuGraphNodeGetType(CUgraphNode node, int *type) {
    if (!valid_node(node) || type == NULL) return CUDA_ERROR_INVALID_VALUE;
    *type = node->type;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuGraphKernelNodeGetParams(CUgraphNode node, CUDA_KERNEL_NODE_PARAMS *p) {
    if (!valid_node(node) || node->type != CU_GRAPH_NODE_TYPE_KERNEL || p == NULL) return CUDA_ERROR_INVALID_VALUE;
    memcpy(p, &node->kernel, sizeof *p);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuGraphKernelNodeGetParams_v2(CUgraphNode node, CUDA_KERNEL_NODE_PARAMS_v2 *p) {
    if (!valid_node(node) || node->type != CU_GRAPH_NODE_TYPE_KERNEL || p == NULL) return CUDA_ERROR_INVALID_VALUE;
    *p = node->kernel;
    return CUDA_SUCCESS;
}

static void free_graph(CUgraph g) {
    for (size_t i = 0; i < g->count; i++) {
        if (g->nodes[i]->child != NULL) free_graph(g->nodes[i]->child);
        g->nodes[i]->magic = 0;
        free(g->nodes[i]);
    }
    free(g->nodes);
    g->magic = 0;
    free(g);
}

static CUresult clone_graph(CUgraph src, CUgraph *out, int depth) {
    if (depth > TF_GRAPH_DEPTH) return CUDA_ERROR_INVALID_VALUE;
    CUgraph g = NULL;
    CUresult rc = cuGraphCreate(&g, 0);
    for (size_t i = 0; rc == CUDA_SUCCESS && i < src->count; i++) {
        CUgraphNode n = src->nodes[i], copy;
        CUgraph child = NULL;
        if (n->child != NULL) rc = clone_graph(n->child, &child, depth + 1);
        if (rc == CUDA_SUCCESS) rc = add_node(&copy, g, n->type, &n->kernel, child);
        if (rc == CUDA_SUCCESS) copy->alloc = n->alloc, copy->op = n->op;
    }
    if (rc != CUDA_SUCCESS && g != NULL) free_graph(g);
    if (rc == CUDA_SUCCESS) *out = g;
    return rc;
}

TF_SIM_API CUresult cuGraphDestroy(CUgraph g) {
    if (!valid_graph(g)) return CUDA_ERROR_INVALID_VALUE;
    free_graph(g);
    return CUDA_SUCCESS;
}

static CUresult flatten(CUgraphExec e, CUgraph g, int depth) {
    if (depth > TF_GRAPH_DEPTH) return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < g->count; i++) {
        CUgraphNode n = g->nodes[i];
        if (n->type == CU_GRAPH_NODE_TYPE_GRAPH) {
            CUresult rc = flatten(e, n->child, depth + 1);
            if (rc != CUDA_SUCCESS) return rc;
            continue;
        }
        if (n->type == CU_GRAPH_NODE_TYPE_MEM_ALLOC) {
            e->physical = tf_physical(n->alloc.poolProps.location.id);
            e->memory += n->alloc.bytesize;
            continue;
        }
        if (n->type != CU_GRAPH_NODE_TYPE_KERNEL && n->type != CU_GRAPH_NODE_TYPE_MEMCPY &&
            n->type != CU_GRAPH_NODE_TYPE_MEMSET && n->type != CU_GRAPH_NODE_TYPE_HOST)
            continue; /* empty nodes; free nodes (the memory stays in the graph pool until destroyed) */
        if (e->count == e->cap) {
            size_t cap = e->cap ? e->cap * 2 : 8;
            tf_graph_step *k = realloc(e->steps, cap * sizeof *k);
            if (k == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
            e->steps = k;
            e->cap = cap;
        }
        e->steps[e->count++] = (tf_graph_step){n->type,
                                               {n->kernel.gridDimX, n->kernel.gridDimY, n->kernel.gridDimZ},
                                               {n->kernel.blockDimX, n->kernel.blockDimY, n->kernel.blockDimZ},
                                               n->op};
    }
    return CUDA_SUCCESS;
}

static CUresult instantiate(CUgraphExec *out, CUgraph g) {
    CUresult rc;
    if (tf_current(&rc) == NULL) return rc;
    if (out == NULL || !valid_graph(g)) return CUDA_ERROR_INVALID_VALUE;
    CUgraphExec e = calloc(1, sizeof *e);
    if (e == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    e->magic = TF_EXEC_MAGIC;
    rc = flatten(e, g, 0);
    if (rc == CUDA_SUCCESS) rc = clone_graph(g, &e->source, 0);
    if (rc != CUDA_SUCCESS) {
        free(e->steps);
        free(e);
        return rc;
    }
    *out = e;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuGraphInstantiate(CUgraphExec *exec, CUgraph g, CUgraphNode *err, char *log, size_t size) {
    if (err != NULL) *err = NULL;
    if (log != NULL && size > 0) log[0] = '\0';
    return instantiate(exec, g);
}

TF_SIM_API CUresult cuGraphInstantiate_v2(CUgraphExec *exec, CUgraph g, CUgraphNode *err, char *log, size_t size) {
    return cuGraphInstantiate(exec, g, err, log, size);
}

TF_SIM_API CUresult cuGraphInstantiateWithFlags(CUgraphExec *exec, CUgraph g, unsigned long long flags) {
    (void)flags;
    return instantiate(exec, g);
}

TF_SIM_API CUresult cuGraphInstantiateWithParams(CUgraphExec *exec, CUgraph g, CUDA_GRAPH_INSTANTIATE_PARAMS *p) {
    CUresult rc = instantiate(exec, g);
    if (p != NULL) {
        p->hErrNode_out = NULL;
        p->result_out = rc == CUDA_SUCCESS ? 0 : 1; /* CUDA_GRAPH_INSTANTIATE_SUCCESS / _ERROR */
    }
    return rc;
}

TF_SIM_API CUresult cuGraphExecDestroy(CUgraphExec e) {
    if (e == NULL || e->magic != TF_EXEC_MAGIC) return CUDA_ERROR_INVALID_VALUE;
    e->magic = 0;
    if (e->memory_made) tf_sim_uncharge(e->physical, e->memory);
    if (e->source != NULL) free_graph(e->source);
    free(e->steps);
    free(e);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuGraphLaunch(CUgraphExec e, CUstream stream) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (e == NULL || e->magic != TF_EXEC_MAGIC) return CUDA_ERROR_INVALID_VALUE;
    if (tf_capture_maybe(stream)) { /* launched into a capturing stream: a child-graph node */
        tf_graph_op op = {.type = CU_GRAPH_NODE_TYPE_GRAPH, .exec = e};
        if (tf_capture_op(stream, &op, &rc)) return rc;
    }
    uint64_t *tail = tf_stream_tail(stream, c, &rc);
    if (tail == NULL) return rc;
    if (e->memory != 0 && !__atomic_load_n(&e->memory_made, __ATOMIC_ACQUIRE)) {
        if (!tf_sim_charge(e->physical, e->memory)) return CUDA_ERROR_OUT_OF_MEMORY;
        __atomic_store_n(&e->memory_made, 1, __ATOMIC_RELEASE);
    }
    for (size_t i = 0; i < e->count; i++) {
        const tf_graph_step *k = &e->steps[i];
        if (k->type == CU_GRAPH_NODE_TYPE_KERNEL) {
            uint64_t threads = (uint64_t)k->grid[0] * k->grid[1] * k->grid[2] * k->block[0] * k->block[1] * k->block[2];
            tf_enqueue(c, tail, tf_kernel_ns(c, threads), 1);
        } else {
            tf_graph_run_op(c, tail, &k->op);
        }
    }
    return CUDA_SUCCESS;
}

/* An upload makes the graph's memory ahead of its first launch, in stream order. */
TF_SIM_API CUresult cuGraphUpload(CUgraphExec e, CUstream stream) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (e == NULL || e->magic != TF_EXEC_MAGIC) return CUDA_ERROR_INVALID_VALUE;
    uint64_t *tail = tf_stream_tail(stream, c, &rc);
    if (tail == NULL) return rc;
    if (e->memory != 0 && !__atomic_load_n(&e->memory_made, __ATOMIC_ACQUIRE)) {
        if (!tf_sim_charge(e->physical, e->memory)) return CUDA_ERROR_OUT_OF_MEMORY;
        __atomic_store_n(&e->memory_made, 1, __ATOMIC_RELEASE);
    }
    tf_enqueue(c, tail, 0, 0);
    return CUDA_SUCCESS;
}
