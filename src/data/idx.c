/* idx.c — LeCun's IDX format (the MNIST distribution files): read raw or
 * gzip-compressed, write raw.
 *
 * Reading goes through zlib's gzread, which passes plain files through
 * untouched, so one code path serves both. Whether the file is gzip is
 * decided by its first two bytes (1f 8b), never by its name. For a raw file
 * the size on disk is known, so the header is checked against it before
 * anything is allocated; for a gzip file the decompressed size cannot be
 * known up front, so the header's dimensions are bounded (DATA_MAX_IMAGES,
 * DATA_MAX_SIDE, under 2^31 bytes in all) and the body is read in chunks into a
 * buffer that grows only as real data arrives — a tiny hostile .gz that
 * claims 2 GiB costs a chunk, not 2 GiB.
 *
 * Left out on purpose: IDX element types other than unsigned byte (0x08),
 * and dimension counts other than 3 (images) and 1 (labels) — MNIST and its
 * look-alikes (Fashion-MNIST, EMNIST, KMNIST) use only these. Writing is
 * raw only; compress with gzip if needed.
 */
#include "data/data.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/check.h"

#define IDX_MAGIC_LABELS 0x00000801u
#define IDX_MAGIC_IMAGES 0x00000803u
/* Bound on n*rows*cols: 2^31-1, so callers may compute n*rows*cols in int. */
#define IDX_MAX_BYTES ((1ull << 31) - 1)
#define IDX_CHUNK (16u << 20)               /* gzread chunk; also the first allocation */

/* ---- opening -------------------------------------------------------------- */

typedef struct {
    gzFile gz;
    int is_gz;            /* file starts with 1f 8b */
    uint64_t file_bytes;  /* size on disk (compressed size for gzip) */
} IdxFile;

/* Opens path for reading and sniffs the gzip magic. The descriptor is handed
 * to gzdopen, so the file we stat is the file we read. */
static int idx_open(const char *path, IdxFile *f) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return dg_set_error("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return dg_set_error("%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return dg_set_error("%s: is a directory, expected an IDX file", path);
    }
    f->file_bytes = (uint64_t)st.st_size;
    unsigned char m[2];
    ssize_t got = pread(fd, m, 2, 0);
    f->is_gz = got == 2 && m[0] == 0x1f && m[1] == 0x8b;
    f->gz = gzdopen(fd, "rb");
    if (!f->gz) {
        close(fd);
        return dg_set_error("%s: cannot open: out of memory in zlib", path);
    }
    /* a large buffer pays off on MNIST-sized files; a small file gets a
     * small one (zlib allocates 3x this per open) */
    gzbuffer(f->gz, f->file_bytes < (1u << 18) ? 8192u : 1u << 18);
    return 0;
}

/* zlib prefixes its messages with the name given to gzdopen ("<fd:3>: ");
 * we print the real path instead. */
static const char *gz_msg(const char *msg) {
    if (strncmp(msg, "<fd:", 4) == 0) {
        const char *c = strstr(msg, ": ");
        if (c) return c + 2;
    }
    return msg;
}

/* Reads up to len bytes; returns the count read, or -1 with the error set
 * when zlib reports corrupt data. A short count means end of data (for a gzip
 * stream cut short, zlib says Z_BUF_ERROR, which we also report as short). */
static int64_t idx_gzread_all(gzFile gz, const char *path, uint8_t *dst, uint64_t len,
                              int *cut_short) {
    uint64_t done = 0;
    *cut_short = 0;
    while (done < len) {
        uint64_t want = len - done;
        if (want > IDX_CHUNK) want = IDX_CHUNK;
        int got = gzread(gz, dst + done, (unsigned)want);
        if (got < 0) {
            int err;
            const char *msg = gzerror(gz, &err);
            if (err == Z_BUF_ERROR) { *cut_short = 1; break; }
            return dg_set_error("%s: corrupt gzip data: %s", path, gz_msg(msg));
        }
        done += (uint64_t)got;
        if ((uint64_t)got < want) {
            int err;
            gzerror(gz, &err);
            if (err == Z_BUF_ERROR) *cut_short = 1;
            else if (err != Z_OK)
                return dg_set_error("%s: read error: %s", path, gz_msg(gzerror(gz, &err)));
            break;
        }
    }
    return (int64_t)done;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* "file has N bytes" for raw, "decompressed data has N bytes" for gzip. */
static const char *idx_what(const IdxFile *f) {
    return f->is_gz ? "decompressed data has" : "file has";
}

/* Reads the header (4 + 4*ndims bytes) and checks the magic. */
static int idx_read_header(IdxFile *f, const char *path, uint32_t want_magic, uint32_t *dims,
                           int ndims) {
    uint8_t h[16];
    int hbytes = 4 + 4 * ndims;
    int cut;
    int64_t got = idx_gzread_all(f->gz, path, h, (uint64_t)hbytes, &cut);
    if (got < 0) return -1;
    if (got < 4 || (got < hbytes && be32(h) == want_magic)) {
        return dg_set_error("%s: truncated header: expected %d bytes, %s %lld bytes", path,
                            hbytes, idx_what(f), (long long)got);
    }
    uint32_t magic = be32(h);
    if (magic != want_magic) {
        const char *hint = "";
        if (magic == IDX_MAGIC_LABELS) hint = " (labels file given as images?)";
        else if (magic == IDX_MAGIC_IMAGES) hint = " (images file given as labels?)";
        else if (h[0] == 0x1f && h[1] == 0x8b) hint = " (gzip inside gzip?)";
        else if (magic == ((want_magic & 0xff) << 24 | (want_magic & 0xff00) << 8))
            hint = " (byte-swapped header?)";
        return dg_set_error("%s: wrong magic 0x%08x, expected 0x%08x (IDX %s)%s", path, magic,
                            want_magic, ndims == 3 ? "images" : "labels", hint);
    }
    if (got < hbytes) {
        return dg_set_error("%s: truncated header: expected %d bytes, %s %lld bytes", path,
                            hbytes, idx_what(f), (long long)got);
    }
    for (int i = 0; i < ndims; i++) dims[i] = be32(h + 4 + 4 * i);
    return 0;
}

/* Reads exactly `bytes` of body after a `hbytes` header. For raw files the
 * size on disk was already checked by the caller; for gzip the buffer grows
 * as data arrives. Then makes sure nothing follows. `what` describes the
 * header's claim for the truncation message. Returns an owned buffer or NULL. */
static uint8_t *idx_read_body(IdxFile *f, const char *path, uint64_t bytes, int hbytes,
                              const char *what) {
    uint64_t cap = f->is_gz && bytes > IDX_CHUNK ? IDX_CHUNK : bytes;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) {
        dg_set_error("%s: out of memory allocating %llu bytes", path, (unsigned long long)cap);
        return NULL;
    }
    uint64_t done = 0;
    for (;;) {
        int cut;
        int64_t got = idx_gzread_all(f->gz, path, buf + done, cap - done, &cut);
        if (got < 0) { free(buf); return NULL; }
        done += (uint64_t)got;
        if (done < cap || done == bytes) break;  /* end of data, or all of it */
        uint64_t ncap = cap * 2 < bytes ? cap * 2 : bytes;
        uint8_t *nb = realloc(buf, ncap);
        if (!nb) {
            free(buf);
            dg_set_error("%s: out of memory allocating %llu bytes", path, (unsigned long long)ncap);
            return NULL;
        }
        buf = nb;
        cap = ncap;
    }
    if (done < bytes) {
        free(buf);
        dg_set_error("%s: truncated: header says %s (%llu bytes), %s %llu bytes", path, what,
                     (unsigned long long)(bytes + (uint64_t)hbytes), idx_what(f),
                     (unsigned long long)(done + (uint64_t)hbytes));
        return NULL;
    }
    /* Trailing data means the header and the body disagree: refuse rather
     * than silently dropping samples. */
    uint8_t extra;
    int cut;
    int64_t more = idx_gzread_all(f->gz, path, &extra, 1, &cut);
    if (more != 0) {
        free(buf);
        if (more > 0)
            dg_set_error("%s: header says %s (%llu bytes), but the data goes on past that", path,
                         what, (unsigned long long)(bytes + (uint64_t)hbytes));
        return NULL;
    }
    return buf;
}

/* ---- reading --------------------------------------------------------------- */

int idx_read_images(const char *path, Dataset *ds) {
    memset(ds, 0, sizeof *ds);
    IdxFile f;
    if (idx_open(path, &f) != 0) return -1;
    uint32_t d[3];
    if (idx_read_header(&f, path, IDX_MAGIC_IMAGES, d, 3) != 0) goto fail;
    uint32_t n = d[0], rows = d[1], cols = d[2];
    if (n == 0 || rows == 0 || cols == 0) {
        dg_set_error("%s: zero-size dims: header says %u images of %ux%u", path, n, rows, cols);
        goto fail;
    }
    if (n > DATA_MAX_IMAGES || rows > DATA_MAX_SIDE || cols > DATA_MAX_SIDE) {
        dg_set_error("%s: implausible header: %u images of %ux%u (limits: %d images, side %d)",
                     path, n, rows, cols, DATA_MAX_IMAGES, DATA_MAX_SIDE);
        goto fail;
    }
    uint64_t bytes = (uint64_t)n * rows * cols;
    if (bytes > IDX_MAX_BYTES) {
        dg_set_error("%s: implausible header: %u images of %ux%u is %llu bytes (limit 2^31-1)",
                     path, n, rows, cols, (unsigned long long)bytes);
        goto fail;
    }
    char what[96];
    snprintf(what, sizeof what, "%u images of %ux%u", n, rows, cols);
    if (!f.is_gz && f.file_bytes < bytes + 16) {
        dg_set_error("%s: truncated: header says %s (%llu bytes), file has %llu bytes", path,
                     what, (unsigned long long)(bytes + 16), (unsigned long long)f.file_bytes);
        goto fail;
    }
    uint8_t *px = idx_read_body(&f, path, bytes, 16, what);
    if (!px) goto fail;
    gzclose(f.gz);
    ds->n = (int)n;
    ds->rows = (int)rows;
    ds->cols = (int)cols;
    ds->pixels = px;
    ds->labels = NULL;
    return 0;
fail:
    gzclose(f.gz);
    return -1;
}

int idx_read_labels(const char *path, uint8_t **labels, int *n_out) {
    *labels = NULL;
    *n_out = 0;
    IdxFile f;
    if (idx_open(path, &f) != 0) return -1;
    uint32_t n = 0;
    if (idx_read_header(&f, path, IDX_MAGIC_LABELS, &n, 1) != 0) goto fail;
    if (n == 0) {
        dg_set_error("%s: zero-size dims: header says 0 labels", path);
        goto fail;
    }
    if (n > DATA_MAX_IMAGES) {
        dg_set_error("%s: implausible header: %u labels (limit %d)", path, n, DATA_MAX_IMAGES);
        goto fail;
    }
    char what[64];
    snprintf(what, sizeof what, "%u labels", n);
    if (!f.is_gz && f.file_bytes < (uint64_t)n + 8) {
        dg_set_error("%s: truncated: header says %s (%llu bytes), file has %llu bytes", path,
                     what, (unsigned long long)n + 8, (unsigned long long)f.file_bytes);
        goto fail;
    }
    uint8_t *lab = idx_read_body(&f, path, n, 8, what);
    if (!lab) goto fail;
    gzclose(f.gz);
    for (uint32_t i = 0; i < n; i++) {
        if (lab[i] > 9) {
            dg_set_error("%s: label %u at index %u is not in 0..9", path, lab[i], i);
            free(lab);
            return -1;
        }
    }
    *labels = lab;
    *n_out = (int)n;
    return 0;
fail:
    gzclose(f.gz);
    return -1;
}

int idx_read_pair(const char *images_path, const char *labels_path, Dataset *ds) {
    if (idx_read_images(images_path, ds) != 0) return -1;
    uint8_t *labels;
    int n;
    if (idx_read_labels(labels_path, &labels, &n) != 0) {
        dataset_free(ds);
        return -1;
    }
    if (n != ds->n) {
        dg_set_error("%s: %d labels, but %s has %d images (image/label count mismatch)",
                     labels_path, n, images_path, ds->n);
        free(labels);
        dataset_free(ds);
        return -1;
    }
    ds->labels = labels;
    return 0;
}

/* ---- writing ---------------------------------------------------------------- */

/* Writes header then body, and reports the first failure (including the
 * deferred one fclose can report on a full disk). A failed write removes the
 * partial file so it cannot be mistaken for a good one later. */
static int idx_write(const char *path, const uint8_t *header, size_t hbytes, const uint8_t *body,
                     size_t bytes) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return dg_set_error("%s: cannot create: %s", path, strerror(errno));
    int ok = fwrite(header, 1, hbytes, fp) == hbytes && fwrite(body, 1, bytes, fp) == bytes;
    int e = errno;
    if (fclose(fp) != 0 && ok) { ok = 0; e = errno; }
    if (!ok) {
        remove(path);
        return dg_set_error("%s: write failed: %s", path, strerror(e));
    }
    return 0;
}

int idx_write_images(const char *path, const Dataset *ds) {
    if (ds->n < 1 || ds->rows < 1 || ds->cols < 1 || !ds->pixels)
        return dg_set_error("%s: refusing to write an empty data set (%d images of %dx%d)", path,
                            ds->n, ds->rows, ds->cols);
    uint8_t h[16];
    put_be32(h, IDX_MAGIC_IMAGES);
    put_be32(h + 4, (uint32_t)ds->n);
    put_be32(h + 8, (uint32_t)ds->rows);
    put_be32(h + 12, (uint32_t)ds->cols);
    return idx_write(path, h, 16, ds->pixels, (size_t)ds->n * ds->rows * ds->cols);
}

int idx_write_labels(const char *path, const uint8_t *labels, int n) {
    if (n < 1 || !labels)
        return dg_set_error("%s: refusing to write an empty label set (%d labels)", path, n);
    for (int i = 0; i < n; i++)
        if (labels[i] > 9)
            return dg_set_error("%s: label %u at index %d is not in 0..9", path, labels[i], i);
    uint8_t h[8];
    put_be32(h, IDX_MAGIC_LABELS);
    put_be32(h + 4, (uint32_t)n);
    return idx_write(path, h, 8, labels, (size_t)n);
}
