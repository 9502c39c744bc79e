/* Interposer-style library: finds the next tf_probe with dlsym(RTLD_NEXT). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

int tf_probe(void) {
    int (*next)(void) = (int (*)(void))dlsym(RTLD_NEXT, "tf_probe");
    if (next == NULL) return -1;
    if (next == &tf_probe) return -2; /* RTLD_NEXT resolved from the wrong caller */
    return 100 + next();
}
