/*
 * sim_image.h - what the simulated driver reads from a module image: the kernel entry points
 * and the device globals it defines.  Pure parsing, no driver state (fuzzed on its own by
 * tests/native/test_image.py).
 *
 * Accepted forms (layouts in docs/native.md): the fat-binary wrapper nvcc embeds in host
 * programs (magic 0x466243b1, versions 1 and 2), a bare fat binary (0xba55ed50), a 64-bit
 * ELF cubin and NUL-terminated PTX text.  Fat-binary entries whose payload is compressed
 * (LZ4 or zstd, as nvcc 12.8+ does for PTX) are read through the caller's decompressor;
 * without one (or without the codec) the image is "opaque": any kernel name resolves in it,
 * as the real driver would after JIT compilation, and its globals are unknown.
 */
#ifndef TF_SIM_IMAGE_H
#define TF_SIM_IMAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct tf_image_global {
    char *name;
    uint64_t size;
    const unsigned char *init; /* initial bytes inside the image, or NULL for zeros */
} tf_image_global;

typedef struct tf_image {
    int opaque;   /* some payload could not be read: unknown kernel names are accepted */
    size_t buffer_count;
    unsigned char **buffers; /* decompressed payloads (globals' initial bytes point into them) */
    size_t kernel_count;
    char **kernels;
    size_t global_count;
    tf_image_global *globals;
} tf_image;

/* Decompresses n bytes of codec TF_CODEC_* into dst (cap bytes); returns the length
 * written, 0 when the payload is corrupt, -1 when the codec is not available. */
#define TF_CODEC_LZ4 1
#define TF_CODEC_ZSTD 2
typedef long (*tf_image_inflate)(int codec, const void *src, size_t n, void *dst, size_t cap);

/* Parses an image of at most `avail` bytes (SIZE_MAX when the caller does not know, as for
 * cuModuleLoadData: then the image's own sizes bound every read).  Returns 0 on success
 * (free with tf_image_free), 200 (CUDA_ERROR_INVALID_IMAGE) for a malformed or truncated
 * image (a compressed payload that does not decompress included), 2 (CUDA_ERROR_OUT_OF_MEMORY)
 * when memory ran out.  `inflate` may be NULL.  On failure *why names the
 * field that was wrong (static text). */
int tf_image_parse(const void *image, size_t avail, tf_image_inflate inflate, tf_image *out, const char **why);
void tf_image_free(tf_image *img);

/* Index of a kernel or global by name, -1 when absent. */
long tf_image_kernel(const tf_image *img, const char *name);
long tf_image_global_index(const tf_image *img, const char *name);

#endif /* TF_SIM_IMAGE_H */
