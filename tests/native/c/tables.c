/* The CUDA runtime's private driver tables, called the way libcudart calls them.
 * Prints key=value lines (checked by tests/native/test_export_tables.py). */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "driver.h"

FN(cuGetExportTable, CUresult, (const void **, const CUuuid *));
FN(cuDevicePrimaryCtxReset, CUresult, (CUdevice));
FN(cuCtxCreate, CUresult, (CUcontext *, void *, unsigned int, CUdevice)); /* CUDA 13: the _v4 form */
FN(cuCtxDestroy, CUresult, (CUcontext));
FN(cuCtxGetCurrent, CUresult, (CUcontext *));
FN(cuDriverGetVersion, CUresult, (int *));
FN(cuDeviceGetUuid, CUresult, (CUuuid *, CUdevice));
FN(cuDeviceGetAttribute, CUresult, (int *, int, CUdevice));

typedef void (*dtor_fn)(CUcontext, void *, void *);
typedef CUresult (*put_fn)(CUcontext, void *, void *, dtor_fn);
typedef CUresult (*del_fn)(CUcontext, void *);
typedef CUresult (*get_fn)(void **, CUcontext, void *);

static const CUuuid CLS = {{(char)0xc6, (char)0x93, 0x33, 0x6e, 0x11, 0x21, (char)0xdf, 0x11, (char)0xa8, (char)0xc3,
                            0x68, (char)0xf3, 0x55, (char)0xd8, (char)0x95, (char)0x93}};
static const CUuuid RT = {{0x6b, (char)0xd5, (char)0xfb, 0x6c, 0x5b, (char)0xf4, (char)0xe7, 0x4a, (char)0x89,
                           (char)0x87, (char)0xd9, 0x39, 0x12, (char)0xfd, (char)0x9d, (char)0xf9}};
static const CUuuid HOOKS = {{(char)0xa0, (char)0x94, 0x79, (char)0x8c, 0x2e, 0x74, 0x2e, 0x74, (char)0x93,
                              (char)0xf2, 0x08, 0x00, 0x20, 0x0c, 0x0a, 0x66}};
static const CUuuid CHECKS = {{0x26, 0x3e, (char)0x88, 0x60, 0x7c, (char)0xd2, 0x61, 0x43, (char)0x92, (char)0xf6,
                               (char)0xbb, (char)0xd5, 0x00, 0x6d, (char)0xfa, 0x7e}};
static const CUuuid INTEGRITY = {{(char)0xd4, 0x08, 0x20, 0x55, (char)0xbd, (char)0xe6, 0x70, 0x4b, (char)0x8d, 0x34,
                                  (char)0xba, 0x12, 0x3c, 0x66, (char)0xe1, (char)0xf2}};
static const CUuuid TLS = {{0x42, (char)0xd8, 0x5a, (char)0x81, 0x23, (char)0xf6, (char)0xcb, 0x47, (char)0x82,
                            (char)0x98, (char)0xf6, (char)0xe7, (char)0x8a, 0x3a, (char)0xec, (char)0xdc}};

static int dtor_calls;
static CUcontext dtor_ctx;
static void *dtor_key, *dtor_value;
static void dtor(CUcontext ctx, void *key, void *value) {
    dtor_calls++;
    dtor_ctx = ctx;
    dtor_key = key;
    dtor_value = value;
}

static void *const *table(const CUuuid *id) {
    const void *t = NULL;
    CUresult rc = cuGetExportTable(&t, id);
    if (rc != CUDA_SUCCESS || t == NULL) {
        printf("error=table rc %d\n", rc);
        exit(4);
    }
    return (void *const *)t;
}

int main(void) {
    open_driver(0);
    LOAD(cuGetExportTable);
    LOAD(cuDevicePrimaryCtxReset);
    LOAD(cuCtxCreate);
    LOAD(cuCtxDestroy);
    LOAD(cuCtxGetCurrent);
    LOAD(cuDriverGetVersion);
    LOAD(cuDeviceGetUuid);
    LOAD(cuDeviceGetAttribute);
    const void *t = (const void *)1;
    CUuuid unknown;
    memset(&unknown, 0x5a, sizeof unknown);
    printf("null_table=%d\n", cuGetExportTable(NULL, &CLS));
    printf("null_uuid=%d\n", cuGetExportTable(&t, NULL));
    CUresult rc = cuGetExportTable(&t, &unknown);
    printf("unknown=%d,%d\n", rc, t == NULL);

    void *const *rt = table(&RT), *const *hooks = table(&HOOKS), *const *checks = table(&CHECKS);
    void *const *integrity = table(&INTEGRITY), *const *tls = table(&TLS), *const *cls = table(&CLS);
    printf("sizes=%zu,%zu,%zu,%zu,%zu\n", (size_t)rt[0], (size_t)hooks[0], (size_t)tls[0], (size_t)checks[0],
           (size_t)integrity[0]);

    /* context-local storage */
    put_fn put = (put_fn)cls[0];
    del_fn del = (del_fn)cls[1];
    get_fn get = (get_fn)cls[2];
    int key1, key2;
    void *value = NULL;
    CUcontext primary;
    cuCtxGetCurrent(&primary);
    rc = put(NULL, &key1, (void *)0x1234, NULL);
    CUresult got = get(&value, NULL, &key1);
    printf("cls_put_get=%d,%d,%d\n", rc, got, value == (void *)0x1234);
    printf("cls_get_null=%d\n", get(NULL, NULL, &key1));
    printf("cls_get_missing=%d\n", get(&value, primary, &key2));
    rc = del(NULL, &key1);
    printf("cls_delete=%d,%d\n", rc, get(&value, NULL, &key1));
    put(primary, &key2, (void *)0x5678, dtor);
    rc = cuDevicePrimaryCtxReset(0);
    printf("cls_reset=%d,%d,%d,%d\n", rc, dtor_calls, dtor_ctx == primary && dtor_key == &key2,
           dtor_value == (void *)0x5678);
    printf("cls_after_reset=%d\n", get(&value, primary, &key2));
    CUcontext created;
    cuCtxCreate(&created, NULL, 0, 0);
    put(NULL, &key1, (void *)0x9, dtor);
    rc = cuCtxDestroy(created);
    printf("cls_destroy=%d,%d,%d\n", rc, dtor_calls, dtor_ctx == created && dtor_value == (void *)0x9);

    /* runtime interface: the device's primary context */
    CUcontext pctx = NULL;
    rc = ((CUresult(*)(CUcontext *, CUdevice))rt[2])(&pctx, 0);
    printf("rt_primary=%d,%d\n", rc, pctx == primary);
    printf("rt_primary_null=%d\n", ((CUresult(*)(CUcontext *, CUdevice))rt[2])(NULL, 0));
    printf("rt_primary_bad_device=%d\n", ((CUresult(*)(CUcontext *, CUdevice))rt[2])(&pctx, 7));

    /* tools hooks: driver-owned buffers */
    void *b1 = NULL, *b2 = NULL;
    size_t n1 = 0, n2 = 0;
    ((void (*)(void **, size_t *))hooks[2])(&b1, &n1);
    ((void (*)(void **, size_t *))hooks[6])(&b2, &n2);
    printf("hooks=%zu,%zu,%d\n", n1, n2, b1 != NULL && b2 != NULL && b1 != b2);

    /* context checks */
    unsigned int flag = 7;
    const void *unused = NULL;
    rc = ((CUresult(*)(CUcontext, unsigned int *, const void **))checks[2])(primary, &flag, &unused);
    printf("checks=%d,%u,%u\n", rc, flag, ((unsigned int (*)(void))checks[3])());
    printf("checks_null=%d\n", ((CUresult(*)(CUcontext, unsigned int *, const void **))checks[2])(primary, NULL, NULL));

    /* integrity check: constants for versions ending in 0/1, the keyed hash otherwise */
    typedef CUresult (*check_fn)(unsigned int, unsigned long long, unsigned long long *);
    check_fn check = (check_fn)integrity[1];
    unsigned long long out[2] = {0, 0};
    check(13000, 1700000000ULL, out);
    printf("integrity_v0=%016llx%016llx\n", out[0], out[1]);
    check(13001, 1700000000ULL, out);
    printf("integrity_v1=%016llx%016llx\n", out[0], out[1]);
    printf("integrity_null=%d\n", check(13002, 1700000000ULL, NULL));
    rc = check(13002, 1700000000ULL, out);
    printf("integrity_v2=%d,%016llx,%016llx\n", rc, out[0], out[1]);
    int driver = 0, domain = 0, bus = 0, device = 0;
    CUuuid uuid;
    cuDriverGetVersion(&driver);
    cuDeviceGetUuid(&uuid, 0);
    cuDeviceGetAttribute(&domain, 50, 0);
    cuDeviceGetAttribute(&bus, 33, 0);
    cuDeviceGetAttribute(&device, 34, 0);
    printf("hash_inputs=%d,%d,%u,%lu,%lu,%lu,%d,%d,%d\n", driver, (int)getpid(), (unsigned)pthread_self(),
           (unsigned long)(uintptr_t)rt, (unsigned long)(uintptr_t)integrity, (unsigned long)(uintptr_t)integrity[1],
           domain, bus, device);
    printf("uuid=");
    for (int i = 0; i < 16; i++) printf("%02x", (unsigned char)uuid.bytes[i]);
    printf("\n");
    return 0;
}
