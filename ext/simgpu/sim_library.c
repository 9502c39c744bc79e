/*
 * Simulated modules, libraries, functions and kernels.  SIMULATED: images are parsed for
 * their kernel names and device globals (sim_image.c), nothing is compiled or run.  A module
 * answers only for kernels its image defines (CUDA_ERROR_NOT_FOUND otherwise), except when a
 * payload is compressed and so unreadable here, where every name resolves.  Device globals
 * get simulated device memory holding the image's initial bytes, so cudaMemcpyToSymbol and
 * cudaMemcpyFromSymbol round-trip.
 *
 * The CUDA runtime 12+/13 registers its fat binary with cuLibraryLoadData, looks kernels up
 * with cuLibraryGetKernel and launches the CUkernel through cuLaunchKernel: a CUkernel here
 * is the same object as the CUfunction it stands for, so both launch.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_cuda.h"
#include "sim_image.h"

#define TF_MOD_MAGIC 0x444f4d46u
#define TF_FUNC_MAGIC 0x434e5546u
#define TF_LIB_MAGIC 0x42494c46u
#define TF_MAX_DYNAMIC_SHMEM 232448 /* H100: 227 KiB of opt-in shared memory per block */

struct CUfunc_st {
    uint32_t magic;
    CUmodule module;
    struct CUfunc_st *next;
    int max_dynamic_shmem;
    int carveout;
    int cache_config;
    char name[];
};

struct CUmod_st {
    uint32_t magic;
    tf_image image;
    struct CUfunc_st *functions; /* created on first lookup, freed on unload */
    CUdeviceptr *globals;        /* one per image global, 0 until first looked up */
    CUlibrary library;           /* set when the module belongs to a library */
};

struct CUlib_st {
    uint32_t magic;
    CUmodule module;
};

/* Process-local; lookups are rare (the runtime caches every handle it gets). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int valid_module(CUmodule m) { return m != NULL && m->magic == TF_MOD_MAGIC; }
static int valid_library(CUlibrary l) { return l != NULL && l->magic == TF_LIB_MAGIC; }

int tf_function_valid(CUfunction f) { return f != NULL && f->magic == TF_FUNC_MAGIC; }

/* ---- loading ---- */

/* Compressed fat-binary payloads, through the system's libzstd / liblz4 when present (found
 * once, by soname; nvcc 12.8+ compresses PTX with zstd).  Without them images stay opaque. */
static size_t (*zstd_frame_size)(const void *, size_t);
static size_t (*zstd_decompress)(void *, size_t, const void *, size_t);
static unsigned (*zstd_is_error)(size_t);
static int (*lz4_decompress)(const char *, char *, int, int);
static pthread_once_t codecs_once = PTHREAD_ONCE_INIT;

static void load_codecs(void) {
    void *zstd = dlopen("libzstd.so.1", RTLD_NOW | RTLD_LOCAL);
    if (zstd != NULL) {
        *(void **)&zstd_frame_size = dlsym(zstd, "ZSTD_findFrameCompressedSize");
        *(void **)&zstd_decompress = dlsym(zstd, "ZSTD_decompress");
        *(void **)&zstd_is_error = dlsym(zstd, "ZSTD_isError");
    }
    void *lz4 = dlopen("liblz4.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lz4 != NULL) *(void **)&lz4_decompress = dlsym(lz4, "LZ4_decompress_safe");
}

static long inflate(int codec, const void *src, size_t n, void *dst, size_t cap) {
    pthread_once(&codecs_once, load_codecs);
    if (codec == TF_CODEC_ZSTD) {
        if (zstd_frame_size == NULL || zstd_decompress == NULL || zstd_is_error == NULL) return -1;
        size_t frame = zstd_frame_size(src, n); /* the payload is padded past its frame */
        if (zstd_is_error(frame)) return 0;
        size_t got = zstd_decompress(dst, cap, src, frame);
        return zstd_is_error(got) ? 0 : (long)got;
    }
    if (codec == TF_CODEC_LZ4) {
        if (lz4_decompress == NULL) return -1;
        if (n > INT32_MAX || cap > INT32_MAX) return 0;
        int got = lz4_decompress(src, dst, (int)n, (int)cap);
        return got > 0 ? got : 0;
    }
    return -1;
}

static CUresult new_module(CUmodule *out, const void *image, size_t avail) {
    if (out == NULL || image == NULL) return CUDA_ERROR_INVALID_VALUE;
    CUmodule m = calloc(1, sizeof *m);
    if (m == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    const char *why = NULL;
    int rc = tf_image_parse(image, avail, inflate, &m->image, &why);
    if (rc == 0 && m->image.global_count > 0) {
        m->globals = calloc(m->image.global_count, sizeof *m->globals);
        if (m->globals == NULL) rc = CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (rc != 0) {
        tf_image_free(&m->image);
        free(m);
        return (CUresult)rc;
    }
    m->magic = TF_MOD_MAGIC;
    *out = m;
    return CUDA_SUCCESS;
}

static void free_module(CUmodule m) {
    m->magic = 0;
    for (size_t i = 0; i < m->image.global_count; i++)
        if (m->globals[i] != 0) cuMemFree_v2(m->globals[i]);
    for (struct CUfunc_st *f = m->functions, *next; f != NULL; f = next) {
        next = f->next;
        f->magic = 0;
        free(f);
    }
    tf_image_free(&m->image);
    free(m->globals);
    free(m);
}

static CUresult load_in_context(CUmodule *module, const void *image) {
    CUresult rc;
    if (tf_current(&rc) == NULL) return rc;
    return new_module(module, image, SIZE_MAX);
}

TF_SIM_API CUresult cuModuleLoadData(CUmodule *module, const void *image) { return load_in_context(module, image); }
TF_SIM_API CUresult cuModuleLoadDataEx(CUmodule *module, const void *image, unsigned int n, void *options,
                                       void **values) {
    (void)n;
    (void)options;
    (void)values;
    return load_in_context(module, image);
}
TF_SIM_API CUresult cuModuleLoadFatBinary(CUmodule *module, const void *image) { return load_in_context(module, image); }

/* Reads a whole file into memory (images loaded by path); NULL with *rc on failure. */
static void *read_file(const char *path, size_t *size, CUresult *rc) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *rc = CUDA_ERROR_FILE_NOT_FOUND;
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap + 1);
    for (size_t got; buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            unsigned char *bigger = realloc(buf, cap * 2 + 1);
            if (bigger == NULL) free(buf);
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf == NULL) {
        *rc = CUDA_ERROR_OUT_OF_MEMORY;
        return NULL;
    }
    buf[n] = '\0'; /* PTX files need not end in NUL */
    *size = n + 1;
    return buf;
}

static CUresult load_file(CUmodule *module, const char *path) {
    if (module == NULL || path == NULL) return CUDA_ERROR_INVALID_VALUE;
    size_t size = 0;
    CUresult rc;
    void *image = read_file(path, &size, &rc);
    if (image == NULL) return rc;
    rc = new_module(module, image, size);
    /* Initial bytes that point into the file's buffer go with it: those globals read as
     * zeros (ones the parser decompressed or decoded live in the image's own buffers). */
    if (rc == CUDA_SUCCESS)
        for (size_t i = 0; i < (*module)->image.global_count; i++) {
            tf_image_global *g = &(*module)->image.globals[i];
            const unsigned char *p = image;
            if (g->init != NULL && g->init >= p && g->init < p + size) g->init = NULL;
        }
    free(image);
    return rc;
}

TF_SIM_API CUresult cuModuleLoad(CUmodule *module, const char *path) {
    CUresult rc;
    if (tf_current(&rc) == NULL) return rc;
    return load_file(module, path);
}

TF_SIM_API CUresult cuModuleUnload(CUmodule module) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    pthread_mutex_lock(&lock);
    if (!valid_module(module) || module->library != NULL) {
        pthread_mutex_unlock(&lock);
        return CUDA_ERROR_INVALID_HANDLE;
    }
    module->magic = 0;
    pthread_mutex_unlock(&lock);
    free_module(module);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuModuleGetLoadingMode(int *mode) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (mode == NULL) return CUDA_ERROR_INVALID_VALUE;
    *mode = 2; /* CU_MODULE_LAZY_LOADING: the default since CUDA 12.2 */
    return CUDA_SUCCESS;
}

/* ---- functions ---- */

static CUresult get_function(CUfunction *out, CUmodule m, const char *name) {
    if (out == NULL || name == NULL) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&lock);
    CUresult rc = CUDA_SUCCESS;
    struct CUfunc_st *f = NULL;
    if (!valid_module(m)) {
        rc = CUDA_ERROR_INVALID_HANDLE;
    } else if (!m->image.opaque && tf_image_kernel(&m->image, name) < 0) {
        rc = CUDA_ERROR_NOT_FOUND;
    } else {
        for (f = m->functions; f != NULL && strcmp(f->name, name) != 0; f = f->next) {
        }
        if (f == NULL && (f = calloc(1, sizeof *f + strlen(name) + 1)) != NULL) {
            strcpy(f->name, name);
            f->module = m;
            f->carveout = -1;
            f->max_dynamic_shmem = 48 * 1024;
            f->magic = TF_FUNC_MAGIC;
            f->next = m->functions;
            m->functions = f;
        }
        if (f == NULL) rc = CUDA_ERROR_OUT_OF_MEMORY;
    }
    pthread_mutex_unlock(&lock);
    if (rc == CUDA_SUCCESS) *out = f;
    return rc;
}

TF_SIM_API CUresult cuModuleGetFunction(CUfunction *fn, CUmodule module, const char *name) {
    CUresult rc = tf_need_init();
    return rc != CUDA_SUCCESS ? rc : get_function(fn, module, name);
}

TF_SIM_API CUresult cuModuleGetFunctionCount(unsigned int *count, CUmodule module) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (count == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (!valid_module(module)) return CUDA_ERROR_INVALID_HANDLE;
    *count = (unsigned int)module->image.kernel_count;
    return CUDA_SUCCESS;
}

static CUresult get_global(CUdeviceptr *dptr, size_t *bytes, CUmodule m, const char *name) {
    if (name == NULL || (dptr == NULL && bytes == NULL)) return CUDA_ERROR_INVALID_VALUE;
    if (!valid_module(m)) return CUDA_ERROR_INVALID_HANDLE;
    long i = tf_image_global_index(&m->image, name);
    if (i < 0) return CUDA_ERROR_NOT_FOUND;
    const tf_image_global *g = &m->image.globals[i];
    CUresult rc = CUDA_SUCCESS;
    pthread_mutex_lock(&lock);
    if (m->globals[i] == 0) {
        rc = cuMemAlloc_v2(&m->globals[i], g->size);
        if (rc == CUDA_SUCCESS)
            memcpy((void *)(uintptr_t)m->globals[i], g->init, g->init != NULL ? g->size : 0);
        if (rc == CUDA_SUCCESS && g->init == NULL) memset((void *)(uintptr_t)m->globals[i], 0, g->size);
    }
    CUdeviceptr p = m->globals[i];
    pthread_mutex_unlock(&lock);
    if (rc != CUDA_SUCCESS) return rc;
    if (dptr != NULL) *dptr = p;
    if (bytes != NULL) *bytes = g->size;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuModuleGetGlobal_v2(CUdeviceptr *dptr, size_t *bytes, CUmodule module, const char *name) {
    CUresult rc;
    if (tf_current(&rc) == NULL) return rc;
    return get_global(dptr, bytes, module, name);
}

/* CUDA 2.0 form with 32-bit results. */
TF_SIM_API CUresult cuModuleGetGlobal(unsigned int *dptr, unsigned int *bytes, CUmodule module, const char *name) {
    CUdeviceptr p = 0;
    size_t n = 0;
    CUresult rc = cuModuleGetGlobal_v2(&p, &n, module, name);
    if (rc == CUDA_SUCCESS && p > UINT32_MAX) return CUDA_ERROR_INVALID_VALUE;
    if (rc == CUDA_SUCCESS && dptr != NULL) *dptr = (unsigned int)p;
    if (rc == CUDA_SUCCESS && bytes != NULL) *bytes = (unsigned int)n;
    return rc;
}

/* Function attributes (CUfunction_attribute); the values of a small sm_90 kernel. */
static CUresult function_attribute(int *value, int attribute, CUfunction f) {
    if (value == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (!tf_function_valid(f)) return CUDA_ERROR_INVALID_HANDLE;
    switch (attribute) {
    case 0: *value = 1024; break;                         /* MAX_THREADS_PER_BLOCK */
    case 1: case 2: case 3: *value = 0; break;            /* SHARED / CONST / LOCAL_SIZE_BYTES */
    case 4: *value = 16; break;                           /* NUM_REGS */
    case 5: case 6: *value = 90; break;                   /* PTX_VERSION, BINARY_VERSION */
    case 7: *value = 0; break;                            /* CACHE_MODE_CA */
    case 8: *value = f->max_dynamic_shmem; break;         /* MAX_DYNAMIC_SHARED_SIZE_BYTES */
    case 9: *value = f->carveout; break;                  /* PREFERRED_SHARED_MEMORY_CARVEOUT */
    case 10: case 11: case 12: case 13: *value = 0; break;/* cluster shape: not required */
    case 14: *value = 0; break;                           /* NON_PORTABLE_CLUSTER_SIZE_ALLOWED */
    case 15: *value = 0; break;                           /* CLUSTER_SCHEDULING_POLICY_PREFERENCE */
    default: return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

static CUresult set_function_attribute(CUfunction f, int attribute, int value) {
    if (!tf_function_valid(f)) return CUDA_ERROR_INVALID_HANDLE;
    switch (attribute) {
    case 8:
        if (value < 0 || value > TF_MAX_DYNAMIC_SHMEM) return CUDA_ERROR_INVALID_VALUE;
        f->max_dynamic_shmem = value;
        return CUDA_SUCCESS;
    case 9:
        if (value < -1 || value > 100) return CUDA_ERROR_INVALID_VALUE;
        f->carveout = value;
        return CUDA_SUCCESS;
    case 10: case 11: case 12: case 13: case 14: case 15:
        return CUDA_SUCCESS;
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

TF_SIM_API CUresult cuFuncGetAttribute(int *value, int attribute, CUfunction f) {
    CUresult rc = tf_need_init();
    return rc != CUDA_SUCCESS ? rc : function_attribute(value, attribute, f);
}

TF_SIM_API CUresult cuFuncSetAttribute(CUfunction f, int attribute, int value) {
    CUresult rc = tf_need_init();
    return rc != CUDA_SUCCESS ? rc : set_function_attribute(f, attribute, value);
}

TF_SIM_API CUresult cuFuncSetCacheConfig(CUfunction f, int config) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (!tf_function_valid(f)) return CUDA_ERROR_INVALID_HANDLE;
    if (config < 0 || config > 3) return CUDA_ERROR_INVALID_VALUE;
    f->cache_config = config;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuFuncSetSharedMemConfig(CUfunction f, int config) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (!tf_function_valid(f)) return CUDA_ERROR_INVALID_HANDLE;
    return config < 0 || config > 2 ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
}

TF_SIM_API CUresult cuFuncGetModule(CUmodule *module, CUfunction f) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (module == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (!tf_function_valid(f)) return CUDA_ERROR_INVALID_HANDLE;
    *module = f->module;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuFuncGetName(const char **name, CUfunction f) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (name == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (!tf_function_valid(f)) return CUDA_ERROR_INVALID_HANDLE;
    *name = f->name;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuFuncIsLoaded(int *state, CUfunction f) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (state == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (!tf_function_valid(f)) return CUDA_ERROR_INVALID_HANDLE;
    *state = 1; /* CU_FUNCTION_LOADING_STATE_LOADED */
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuFuncLoad(CUfunction f) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    return tf_function_valid(f) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

/* ---- libraries (context-independent modules) and kernels ---- */

static CUresult new_library(CUlibrary *out, CUmodule m) {
    CUlibrary l = calloc(1, sizeof *l);
    if (l == NULL) {
        free_module(m);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    l->module = m;
    m->library = l;
    l->magic = TF_LIB_MAGIC;
    *out = l;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuLibraryLoadData(CUlibrary *library, const void *code, void *jit_options, void **jit_values,
                                      unsigned int jit_count, void *lib_options, void **lib_values,
                                      unsigned int lib_count) {
    (void)jit_options, (void)jit_values, (void)jit_count, (void)lib_options, (void)lib_values, (void)lib_count;
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (library == NULL) return CUDA_ERROR_INVALID_VALUE;
    CUmodule m = NULL;
    rc = new_module(&m, code, SIZE_MAX);
    return rc != CUDA_SUCCESS ? rc : new_library(library, m);
}

TF_SIM_API CUresult cuLibraryLoadFromFile(CUlibrary *library, const char *path, void *jit_options, void **jit_values,
                                          unsigned int jit_count, void *lib_options, void **lib_values,
                                          unsigned int lib_count) {
    (void)jit_options, (void)jit_values, (void)jit_count, (void)lib_options, (void)lib_values, (void)lib_count;
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (library == NULL) return CUDA_ERROR_INVALID_VALUE;
    CUmodule m = NULL;
    rc = load_file(&m, path);
    return rc != CUDA_SUCCESS ? rc : new_library(library, m);
}

TF_SIM_API CUresult cuLibraryUnload(CUlibrary library) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    pthread_mutex_lock(&lock);
    if (!valid_library(library)) {
        pthread_mutex_unlock(&lock);
        return CUDA_ERROR_INVALID_HANDLE;
    }
    library->magic = 0;
    pthread_mutex_unlock(&lock);
    free_module(library->module);
    free(library);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuLibraryGetModule(CUmodule *module, CUlibrary library) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (module == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (!valid_library(library)) return CUDA_ERROR_INVALID_HANDLE;
    *module = library->module;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuLibraryGetKernel(CUkernel *kernel, CUlibrary library, const char *name) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (!valid_library(library)) return kernel == NULL || name == NULL ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_INVALID_HANDLE;
    return get_function((CUfunction *)kernel, library->module, name);
}

TF_SIM_API CUresult cuLibraryGetKernelCount(unsigned int *count, CUlibrary library) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (count == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (!valid_library(library)) return CUDA_ERROR_INVALID_HANDLE;
    *count = (unsigned int)library->module->image.kernel_count;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuLibraryEnumerateKernels(CUkernel *kernels, unsigned int count, CUlibrary library) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (kernels == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (!valid_library(library)) return CUDA_ERROR_INVALID_HANDLE;
    const tf_image *img = &library->module->image;
    if (count > img->kernel_count) return CUDA_ERROR_INVALID_VALUE;
    for (unsigned int i = 0; i < count && rc == CUDA_SUCCESS; i++)
        rc = get_function((CUfunction *)&kernels[i], library->module, img->kernels[i]);
    return rc;
}

TF_SIM_API CUresult cuLibraryGetGlobal(CUdeviceptr *dptr, size_t *bytes, CUlibrary library, const char *name) {
    CUresult rc;
    if (tf_current(&rc) == NULL) return rc;
    if (!valid_library(library)) return CUDA_ERROR_INVALID_HANDLE;
    return get_global(dptr, bytes, library->module, name);
}

TF_SIM_API CUresult cuLibraryGetManaged(CUdeviceptr *dptr, size_t *bytes, CUlibrary library, const char *name) {
    return cuLibraryGetGlobal(dptr, bytes, library, name);
}

TF_SIM_API CUresult cuKernelGetFunction(CUfunction *fn, CUkernel kernel) {
    CUresult rc;
    if (tf_current(&rc) == NULL) return rc;
    if (fn == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (!tf_function_valid((CUfunction)kernel)) return CUDA_ERROR_INVALID_HANDLE;
    *fn = (CUfunction)kernel;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuKernelGetLibrary(CUlibrary *library, CUkernel kernel) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (library == NULL) return CUDA_ERROR_INVALID_VALUE;
    CUfunction f = (CUfunction)kernel;
    if (!tf_function_valid(f) || f->module->library == NULL) return CUDA_ERROR_INVALID_HANDLE;
    *library = f->module->library;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuKernelGetName(const char **name, CUkernel kernel) {
    return cuFuncGetName(name, (CUfunction)kernel);
}

/* The per-device kernel calls: the device is checked first, then the call is the function's. */
static CUresult kernel_device(CUdevice dev) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    return tf_physical(dev) < 0 ? CUDA_ERROR_INVALID_DEVICE : CUDA_SUCCESS;
}

TF_SIM_API CUresult cuKernelGetAttribute(int *value, int attribute, CUkernel kernel, CUdevice dev) {
    CUresult rc = kernel_device(dev);
    return rc != CUDA_SUCCESS ? rc : function_attribute(value, attribute, (CUfunction)kernel);
}

TF_SIM_API CUresult cuKernelSetAttribute(int attribute, int value, CUkernel kernel, CUdevice dev) {
    CUresult rc = kernel_device(dev);
    return rc != CUDA_SUCCESS ? rc : set_function_attribute((CUfunction)kernel, attribute, value);
}

TF_SIM_API CUresult cuKernelSetCacheConfig(CUkernel kernel, int config, CUdevice dev) {
    CUresult rc = kernel_device(dev);
    return rc != CUDA_SUCCESS ? rc : cuFuncSetCacheConfig((CUfunction)kernel, config);
}
