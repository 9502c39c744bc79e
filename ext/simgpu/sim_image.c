/*
 * Module image parser of the simulated driver (see sim_image.h).  Every read is bounded by
 * the smaller of the caller's `avail` and the sizes the image declares for itself, so a
 * malformed image is rejected with CUDA_ERROR_INVALID_IMAGE instead of being read past.
 */
#define _GNU_SOURCE
#include "sim_image.h"

#include <stdlib.h>
#include <string.h>

#define INVALID_IMAGE 200
#define OUT_OF_MEMORY 2

#define WRAPPER_MAGIC 0x466243b1u
#define FATBIN_MAGIC 0xba55ed50u
#define FATBIN_ENTRY_HEADER 64
#define FATBIN_KIND_PTX 1
#define FATBIN_KIND_ELF 2
#define FATBIN_LZ4 0x2000u
#define FATBIN_ZSTD 0x8000u
#define MAX_INFLATED (1ULL << 30)

#define ELF_HEADER 64
#define ELF_SECTION 64
#define ELF_SYMBOL 24
#define SHT_SYMTAB 2
#define SHT_NOBITS 8
#define STT_OBJECT 1
#define STT_FUNC 2
#define STO_CUDA_ENTRY 0x10 /* st_other bit nvcc sets on __global__ functions */
#define SHN_LORESERVE 0xff00

typedef struct {
    const unsigned char *p;
    size_t n;
} span;

static uint16_t u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t u32(const unsigned char *p) { return (uint32_t)u16(p) | (uint32_t)u16(p + 2) << 16; }
static uint64_t u64(const unsigned char *p) { return (uint64_t)u32(p) | (uint64_t)u32(p + 4) << 32; }

/* [off, off + len) lies inside s. */
static int inside(span s, uint64_t off, uint64_t len) { return off <= s.n && len <= s.n - off; }

static int fail(const char **why, const char *text) {
    *why = text;
    return INVALID_IMAGE;
}

static int grow(void **array, size_t count, size_t each) {
    if (count & (count - 1)) return 1; /* capacity doubles at powers of two */
    void *bigger = realloc(*array, (count ? count * 2 : 4) * each);
    if (bigger == NULL) return 0;
    *array = bigger;
    return 1;
}

static char *copy_name(const unsigned char *p, size_t n) {
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static int add_kernel(tf_image *img, const unsigned char *name, size_t n) {
    for (size_t i = 0; i < img->kernel_count; i++)
        if (strlen(img->kernels[i]) == n && memcmp(img->kernels[i], name, n) == 0) return 0;
    char *s = copy_name(name, n);
    if (s == NULL || !grow((void **)&img->kernels, img->kernel_count, sizeof *img->kernels)) {
        free(s);
        return OUT_OF_MEMORY;
    }
    img->kernels[img->kernel_count++] = s;
    return 0;
}

static int add_global(tf_image *img, const unsigned char *name, size_t n, uint64_t size, const unsigned char *init) {
    for (size_t i = 0; i < img->global_count; i++)
        if (strlen(img->globals[i].name) == n && memcmp(img->globals[i].name, name, n) == 0) return 0;
    char *s = copy_name(name, n);
    if (s == NULL || !grow((void **)&img->globals, img->global_count, sizeof *img->globals)) {
        free(s);
        return OUT_OF_MEMORY;
    }
    img->globals[img->global_count++] = (tf_image_global){.name = s, .size = size, .init = init};
    return 0;
}

/* ---- ELF cubin ---- */

/* NUL-terminated string at off of a string table section; its length in *len. */
static const unsigned char *elf_string(span strtab, uint32_t off, size_t *len) {
    if (off >= strtab.n) return NULL;
    const unsigned char *end = memchr(strtab.p + off, '\0', strtab.n - off);
    if (end == NULL) return NULL;
    *len = (size_t)(end - (strtab.p + off));
    return strtab.p + off;
}

static span elf_section(span elf, uint64_t shoff, uint32_t index) {
    const unsigned char *sh = elf.p + shoff + (uint64_t)index * ELF_SECTION;
    uint64_t off = u64(sh + 0x18), size = u64(sh + 0x20);
    if (u32(sh + 4) == SHT_NOBITS || !inside(elf, off, size)) return (span){NULL, 0};
    return (span){elf.p + off, (size_t)size};
}

static int parse_elf(span elf, tf_image *img, const char **why) {
    if (elf.n < ELF_HEADER) return fail(why, "ELF header: truncated (needs 64 bytes)");
    if (elf.p[4] != 2 || elf.p[5] != 1) return fail(why, "ELF header: expected a 64-bit little-endian image");
    uint64_t shoff = u64(elf.p + 0x28);
    uint16_t shentsize = u16(elf.p + 0x3a), shnum = u16(elf.p + 0x3c);
    if (shnum == 0) return 0;
    if (shentsize != ELF_SECTION) return fail(why, "ELF e_shentsize: expected 64");
    if (!inside(elf, shoff, (uint64_t)shnum * ELF_SECTION)) return fail(why, "ELF e_shoff: section table outside the image");
    uint16_t shstrndx = u16(elf.p + 0x3e);
    span names = shstrndx < shnum ? elf_section(elf, shoff, shstrndx) : (span){NULL, 0};
    for (uint32_t i = 0; i < shnum; i++) {
        const unsigned char *sh = elf.p + shoff + (uint64_t)i * ELF_SECTION;
        uint64_t off = u64(sh + 0x18), size = u64(sh + 0x20);
        if (u32(sh + 4) != SHT_NOBITS && !inside(elf, off, size))
            return fail(why, "ELF sh_offset/sh_size: section outside the image");
        if (u32(sh + 4) != SHT_SYMTAB) continue;
        if (u64(sh + 0x38) != ELF_SYMBOL) return fail(why, "ELF symtab sh_entsize: expected 24");
        uint32_t link = u32(sh + 0x28);
        if (link >= shnum) return fail(why, "ELF symtab sh_link: no such string table");
        span strtab = elf_section(elf, shoff, link);
        for (uint64_t s = 0; s + ELF_SYMBOL <= size; s += ELF_SYMBOL) {
            const unsigned char *sym = elf.p + off + s;
            int type = sym[4] & 0xf;
            uint16_t shndx = u16(sym + 6);
            if ((type != STT_FUNC || !(sym[5] & STO_CUDA_ENTRY)) && type != STT_OBJECT) continue;
            size_t len = 0;
            const unsigned char *name = elf_string(strtab, u32(sym), &len);
            if (name == NULL) return fail(why, "ELF st_name: outside the string table");
            if (len == 0 || shndx == 0 || shndx >= SHN_LORESERVE) continue;
            if (shndx >= shnum) return fail(why, "ELF st_shndx: no such section");
            int rc;
            if (type == STT_FUNC) {
                rc = add_kernel(img, name, len);
            } else {
                uint64_t value = u64(sym + 8), bytes = u64(sym + 0x10);
                span data = elf_section(elf, shoff, shndx);
                const unsigned char *init = NULL;
                if (data.p != NULL) {
                    if (!inside(data, value, bytes)) return fail(why, "ELF st_value/st_size: object outside its section");
                    init = data.p + value;
                }
                rc = add_global(img, name, len, bytes, init);
            }
            if (rc) return rc;
        }
    }
    (void)names;
    return 0;
}

/* ---- PTX text ---- */

static int ident_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$' ||
           c == '.';
}

/* Index just past the directive `word` if it starts a token at i, else 0. */
static size_t directive(span t, size_t i, const char *word) {
    size_t n = strlen(word);
    if (i + n > t.n || memcmp(t.p + i, word, n) != 0) return 0;
    if (i > 0 && ident_char(t.p[i - 1])) return 0;
    if (i + n < t.n && ident_char(t.p[i + n]) && t.p[i + n] != '.') return 0;
    return i + n;
}

static size_t skip_space(span t, size_t i) {
    while (i < t.n && (t.p[i] == ' ' || t.p[i] == '\t' || t.p[i] == '\n' || t.p[i] == '\r')) i++;
    return i;
}

static size_t word_end(span t, size_t i) {
    while (i < t.n && ident_char(t.p[i])) i++;
    return i;
}

/* `.global [.align N] [.vN] .TYPE name[[N]...]` -> size; 0 when not understood. */
static uint64_t ptx_global(span t, size_t *i, size_t *name_at, size_t *name_len, uint64_t *element) {
    uint64_t each = 0, count = 1;
    for (;;) {
        size_t j = skip_space(t, *i), k = word_end(t, j);
        if (k == j) return 0;
        if (t.p[j] != '.') {
            *name_at = j;
            *name_len = k - j;
            *i = k;
            break;
        }
        if (k - j > 2 && t.p[j + 1] == 'v' && t.p[j + 2] >= '1' && t.p[j + 2] <= '8') {
            count *= (uint64_t)(t.p[j + 2] - '0');
        } else if (k - j == 6 && memcmp(t.p + j, ".align", 6) == 0) {
            k = word_end(t, skip_space(t, k)); /* its number */
        } else if (k - j >= 3 && k - j <= 4 && strchr("busf", t.p[j + 1]) != NULL) {
            uint64_t bits = 0;
            for (size_t d = j + 2; d < k && t.p[d] >= '0' && t.p[d] <= '9'; d++) bits = bits * 10 + (t.p[d] - '0');
            each = bits / 8;
        }
        *i = k;
    }
    while (*i < t.n && t.p[*i] == '[') {
        uint64_t dim = 0;
        size_t d = *i + 1;
        for (; d < t.n && t.p[d] >= '0' && t.p[d] <= '9' && dim < (1ULL << 40); d++) dim = dim * 10 + (t.p[d] - '0');
        if (d >= t.n || t.p[d] != ']') return 0;
        count *= dim;
        *i = d + 1;
    }
    *element = each;
    return each * count;
}

/* One initializer value: decimal or 0x hex integer (optionally negative), or a float
 * written as its bits (0fXXXXXXXX, 0dXXXXXXXXXXXXXXXX); 0 when it is none of those. */
static size_t ptx_value(span t, size_t i, uint64_t *value) {
    int negative = i < t.n && t.p[i] == '-';
    size_t j = i + (size_t)negative, base = 10;
    if (j + 1 < t.n && t.p[j] == '0' && strchr("xXfFdD", t.p[j + 1]) != NULL && t.p[j + 1] != '\0') {
        base = 16;
        j += 2;
    }
    uint64_t v = 0;
    size_t start = j;
    for (; j < t.n; j++) {
        unsigned c = t.p[j], digit = c >= '0' && c <= '9' ? c - '0'
                                   : base == 16 && (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10
                                                                                      : 99;
        if (digit >= base) break;
        v = v * base + digit;
    }
    if (j == start) return 0;
    *value = negative ? (uint64_t)0 - v : v;
    return j;
}

/* `= {v, v, ...}` or `= v` after a global: its initial bytes (little-endian elements) in a
 * buffer the image owns; NULL (zeros) when absent or not understood. */
static const unsigned char *ptx_initializer(span t, size_t *i, uint64_t size, uint64_t each, tf_image *img) {
    size_t j = skip_space(t, *i);
    if (j >= t.n || t.p[j] != '=' || each == 0 || each > 8 || size > (1 << 24)) return NULL;
    j = skip_space(t, j + 1);
    int list = j < t.n && t.p[j] == '{';
    if (list) j++;
    unsigned char *buf = calloc(1, (size_t)size);
    if (buf == NULL || !grow((void **)&img->buffers, img->buffer_count, sizeof *img->buffers)) {
        free(buf);
        return NULL;
    }
    img->buffers[img->buffer_count++] = buf;
    for (uint64_t at = 0; at + each <= size;) {
        uint64_t v = 0;
        size_t k = ptx_value(t, skip_space(t, j), &v);
        if (k == 0) break;
        for (uint64_t b = 0; b < each; b++) buf[at + b] = (unsigned char)(v >> (8 * b));
        at += each;
        j = skip_space(t, k);
        if (!list || j >= t.n || t.p[j] != ',') break;
        j++;
    }
    *i = j;
    return buf;
}

static int parse_ptx(span t, tf_image *img) {
    const unsigned char *nul = memchr(t.p, '\0', t.n);
    if (nul != NULL) t.n = (size_t)(nul - t.p);
    for (size_t i = 0; i < t.n; i++) {
        if (t.p[i] == '/' && i + 1 < t.n && t.p[i + 1] == '/') { /* comment to end of line */
            const unsigned char *eol = memchr(t.p + i, '\n', t.n - i);
            i = eol == NULL ? t.n : (size_t)(eol - t.p);
            continue;
        }
        size_t j = directive(t, i, ".entry");
        if (j) {
            size_t a = skip_space(t, j), b = word_end(t, a);
            int rc = b > a ? add_kernel(img, t.p + a, b - a) : 0;
            if (rc) return rc;
            i = b;
            continue;
        }
        j = directive(t, i, ".global");
        if (!j) j = directive(t, i, ".const");
        if (j && (i < 8 || memcmp(t.p + i - 8, ".extern ", 8) != 0)) {
            size_t at = 0, len = 0;
            uint64_t each = 0, size = ptx_global(t, &j, &at, &len, &each);
            const unsigned char *init = size && len ? ptx_initializer(t, &j, size, each, img) : NULL;
            int rc = size && len ? add_global(img, t.p + at, len, size, init) : 0;
            if (rc) return rc;
            i = j;
        }
    }
    return 0;
}

/* ---- fat binaries ---- */

/* A compressed entry: decompressed into a buffer the image owns, then parsed; opaque when
 * no decompressor is there for its codec. */
static int parse_compressed(span payload, int kind, int codec, uint64_t size, tf_image_inflate inflate, tf_image *img,
                            const char **why) {
    if (inflate == NULL) {
        img->opaque = 1;
        return 0;
    }
    if (size == 0 || size > MAX_INFLATED) return fail(why, "fatbin entry uncompressed size: expected 1 byte to 1 GiB");
    unsigned char *buf = malloc((size_t)size + 1);
    if (buf == NULL || !grow((void **)&img->buffers, img->buffer_count, sizeof *img->buffers)) {
        free(buf);
        return OUT_OF_MEMORY;
    }
    img->buffers[img->buffer_count++] = buf;
    long got = inflate(codec, payload.p, payload.n, buf, (size_t)size);
    if (got < 0) {
        img->opaque = 1;
        return 0;
    }
    if (got == 0 || (uint64_t)got > size) return fail(why, "fatbin entry payload: does not decompress");
    buf[got] = '\0';
    span plain = {buf, (size_t)got};
    return kind == FATBIN_KIND_ELF ? parse_elf(plain, img, why) : parse_ptx(plain, img);
}

static int parse_fatbin(span f, tf_image_inflate inflate, tf_image *img, const char **why) {
    if (f.n < 16) return fail(why, "fatbin header: truncated (needs 16 bytes)");
    if (u32(f.p) != FATBIN_MAGIC) return fail(why, "fatbin magic: expected 0xba55ed50");
    if (u16(f.p + 4) != 1) return fail(why, "fatbin version: expected 1");
    uint16_t header = u16(f.p + 6);
    uint64_t size = u64(f.p + 8);
    if (header < 16 || !inside(f, header, size)) return fail(why, "fatbin header size/fatSize: entries outside the image");
    span rest = {f.p + header, (size_t)size};
    while (rest.n >= FATBIN_ENTRY_HEADER) {
        uint16_t kind = u16(rest.p);
        uint32_t entry_header = u32(rest.p + 4);
        uint64_t stored = u32(rest.p + 8) > u32(rest.p + 16) ? u32(rest.p + 8) : u32(rest.p + 16);
        uint64_t flags = u64(rest.p + 40);
        size_t compressed = u32(rest.p + 16);
        if (entry_header < FATBIN_ENTRY_HEADER || !inside(rest, entry_header, stored))
            return fail(why, "fatbin entry header/payload size: entry outside the fat binary");
        span payload = {rest.p + entry_header, (size_t)stored};
        int rc = 0, codec = flags & FATBIN_ZSTD ? TF_CODEC_ZSTD : flags & FATBIN_LZ4 ? TF_CODEC_LZ4 : 0;
        if ((kind == FATBIN_KIND_PTX || kind == FATBIN_KIND_ELF) && codec)
            rc = parse_compressed((span){payload.p, compressed && compressed <= payload.n ? compressed : payload.n},
                                  kind, codec, u64(rest.p + 56), inflate, img, why);
        else if (kind == FATBIN_KIND_ELF)
            rc = parse_elf(payload, img, why);
        else if (kind == FATBIN_KIND_PTX)
            rc = parse_ptx(payload, img);
        if (rc) return rc;
        rest.p += entry_header + stored;
        rest.n -= entry_header + stored;
    }
    return 0;
}

static int parse_wrapper(const unsigned char *w, size_t avail, tf_image_inflate inflate, tf_image *img,
                         const char **why) {
    if (avail < 24) return fail(why, "fatbin wrapper: truncated (needs 24 bytes)");
    uint32_t version = u32(w + 4);
    const void *data, *list;
    memcpy(&data, w + 8, sizeof data);
    memcpy(&list, w + 16, sizeof list);
    if (version == 1) {
        if (data == NULL) return fail(why, "fatbin wrapper data: NULL");
        return parse_fatbin((span){data, SIZE_MAX}, inflate, img, why);
    }
    if (version != 2) return fail(why, "fatbin wrapper version: expected 1 or 2");
    if (list == NULL) return fail(why, "fatbin wrapper prelinked list: NULL");
    for (const void *const *p = list; *p != NULL; p++) {
        int rc = parse_fatbin((span){*p, SIZE_MAX}, inflate, img, why);
        if (rc) return rc;
    }
    return 0;
}

int tf_image_parse(const void *image, size_t avail, tf_image_inflate inflate, tf_image *out, const char **why) {
    static const char *unused;
    if (why == NULL) why = &unused;
    memset(out, 0, sizeof *out);
    *why = "";
    if (image == NULL || avail < 4) return fail(why, "image: empty");
    const unsigned char *p = image;
    int rc;
    if (u32(p) == WRAPPER_MAGIC) {
        rc = parse_wrapper(p, avail, inflate, out, why);
    } else if (u32(p) == FATBIN_MAGIC) {
        rc = parse_fatbin((span){p, avail}, inflate, out, why);
    } else if (memcmp(p, "\177ELF", 4) == 0) {
        rc = parse_elf((span){p, avail}, out, why);
    } else {
        /* PTX: text up to its NUL; anything else is not an image. */
        size_t n = 0;
        while (n < avail && p[n] != '\0' && (p[n] >= 0x20 || p[n] == '\n' || p[n] == '\r' || p[n] == '\t')) n++;
        if (n == avail || p[n] != '\0') return fail(why, "image: not a fat binary, ELF cubin or NUL-terminated PTX text");
        if (directive((span){p, n}, 0, ".version") == 0 && memmem(p, n, ".version", 8) == NULL)
            return fail(why, "PTX: no .version directive");
        rc = parse_ptx((span){p, n}, out);
    }
    if (rc) tf_image_free(out);
    return rc;
}

void tf_image_free(tf_image *img) {
    for (size_t i = 0; i < img->kernel_count; i++) free(img->kernels[i]);
    for (size_t i = 0; i < img->global_count; i++) free(img->globals[i].name);
    for (size_t i = 0; i < img->buffer_count; i++) free(img->buffers[i]);
    free(img->kernels);
    free(img->globals);
    free(img->buffers);
    memset(img, 0, sizeof *img);
}

long tf_image_kernel(const tf_image *img, const char *name) {
    for (size_t i = 0; i < img->kernel_count; i++)
        if (strcmp(img->kernels[i], name) == 0) return (long)i;
    return -1;
}

long tf_image_global_index(const tf_image *img, const char *name) {
    for (size_t i = 0; i < img->global_count; i++)
        if (strcmp(img->globals[i].name, name) == 0) return (long)i;
    return -1;
}
