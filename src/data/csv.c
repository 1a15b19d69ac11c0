/* csv.c — the Kaggle "Digit Recognizer" CSV files: read train.csv/test.csv,
 * write either layout, and write submission.csv.
 *
 * The reader is hand-written for speed: train.csv is ~110 MB of small
 * integers, and a general CSV library (or strtol per cell) spends most of
 * its time on generality we do not need. The whole file is read into one
 * buffer (bounded at 4 GiB, size checked first), rows are counted with
 * memchr to size the pixel array once, and every cell is parsed by hand
 * with its terminator checked, so each malformed cell gets a precise
 * "file:line: column C (name): problem" message.
 *
 * Left out on purpose: quoting, other separators, whitespace around cells,
 * and non-integer cells — Kaggle's files have none, and accepting them would
 * only hide a wrong file. A UTF-8 byte-order mark before the header is
 * skipped (spreadsheet exports add one).
 */
#include "data/data.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/check.h"
#include "core/util.h"

#define CSV_MAX_BYTES (4ull << 30)

/* ---- whole-file read ------------------------------------------------------ */

/* Reads the whole file into an owned, NUL-terminated buffer. */
static char *csv_slurp(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        dg_set_error("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        dg_set_error("%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if ((uint64_t)st.st_size > CSV_MAX_BYTES || (uint64_t)st.st_size >= SIZE_MAX) {
        dg_set_error("%s: file is %lld bytes, more than the 4 GiB limit for CSV", path,
                     (long long)st.st_size);
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        dg_set_error("%s: out of memory reading %zu bytes", path, size);
        close(fd);
        return NULL;
    }
    size_t done = 0;
    while (done < size) {
        ssize_t got = read(fd, buf + done, size - done > (1u << 30) ? (1u << 30) : size - done);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            dg_set_error("%s: read error: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return NULL;
        }
        if (got == 0) break;  /* shrank while reading: parse what is there */
        done += (size_t)got;
    }
    close(fd);
    buf[done] = '\0';
    *len = done;
    return buf;
}

/* ---- parsing helpers ------------------------------------------------------- */

static int is_eol(const char *p, const char *end) {
    return p == end || *p == '\n' || (*p == '\r' && (p + 1 == end || p[1] == '\n'));
}

/* Pointer past the end of the line starting at p (past its '\n', or end). */
static const char *line_next(const char *p, const char *end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    return nl ? nl + 1 : end;
}

/* Number of comma-separated cells on the line at p. */
static long line_cells(const char *p, const char *end) {
    long n = 1;
    for (; !is_eol(p, end); p++) n += *p == ',';
    return n;
}

/* Copies the cell at p (up to ',' or end of line) into out for a message,
 * shortened if long. */
static void cell_text(const char *p, const char *end, char *out, size_t cap) {
    size_t k = 0;
    while (p < end && *p != ',' && !is_eol(p, end) && k + 1 < cap) {
        unsigned char ch = (unsigned char)*p++;
        out[k++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;  /* keep the message one line */
    }
    if (k + 1 == cap && k >= 3) memcpy(out + k - 3, "...", 3);
    out[k] = '\0';
}

/* Name of column c (0-based) for messages: "label" or "pixelK". */
static void col_name(int c, int has_label, char *out, size_t cap) {
    if (has_label && c == 0) snprintf(out, cap, "label");
    else snprintf(out, cap, "pixel%d", c - has_label);
}

/* ---- reader ------------------------------------------------------------------ */

/* What the header says: the layout (train.csv has a label column first,
 * test.csv does not) and the square image its pixel columns make. */
typedef struct {
    const char *path;
    int has_label, ncols, npix, side;
} CsvLayout;

/* The header line at *pp: every column named in place. Leaves *pp at the
 * first data line. */
static int parse_header(const char **pp, const char *end, CsvLayout *lay) {
    const char *p = *pp, *path = lay->path;
    char cell[48], name[24];
    if (p == end || is_eol(p, end))
        return dg_set_error("%s:1: %s (expected a header starting with 'label' or 'pixel0')", path,
                            p == end ? "empty file" : "empty header line");
    cell_text(p, end, cell, sizeof cell);
    if (strcmp(cell, "label") == 0) lay->has_label = 1;
    else if (strcmp(cell, "pixel0") == 0) lay->has_label = 0;
    else {
        int numeric = cell[0] >= '0' && cell[0] <= '9';
        return dg_set_error("%s:1: %s header: first column is '%s', expected 'label' (train.csv) or "
                            "'pixel0' (test.csv)", path, numeric ? "missing" : "unknown", cell);
    }
    long ncols = line_cells(p, end);
    if (ncols > (long)DATA_MAX_SIDE * DATA_MAX_SIDE + 1)
        return dg_set_error("%s:1: %ld columns in the header, more than a %dx%d image", path, ncols,
                            DATA_MAX_SIDE, DATA_MAX_SIDE);
    lay->ncols = (int)ncols;
    for (int c = 0; c < lay->ncols; c++) {
        cell_text(p, end, cell, sizeof cell);
        col_name(c, lay->has_label, name, sizeof name);
        if (strcmp(cell, name) != 0)
            return dg_set_error("%s:1: column %d of the header is '%s', expected '%s'", path, c + 1, cell, name);
        while (*p != ',' && !is_eol(p, end)) p++;
        if (*p == ',') p++;
    }
    *pp = line_next(p, end);
    lay->npix = lay->ncols - lay->has_label;
    lay->side = 0;
    while ((long)(lay->side + 1) * (lay->side + 1) <= lay->npix) lay->side++;
    if (lay->npix < 1 || lay->side * lay->side != lay->npix || lay->side > DATA_MAX_SIDE)
        return dg_set_error("%s:1: %d pixel columns is not a perfect square (images must be square, "
                            "e.g. 784 = 28x28)", path, lay->npix);
    return 0;
}

/* Upper bound on the rows from p on, so the pixels take one allocation. A
 * valid row takes at least 2*ncols bytes (one digit and one separator per
 * cell; the last row may lack its newline), which bounds the allocation by
 * the file size even for a file of short lines. */
static int row_bound(const char *p, const char *end, const CsvLayout *lay, size_t *max_rows) {
    size_t rows = 0;
    for (const char *q = p; q < end; q = line_next(q, end)) rows++;
    size_t fit_rows = ((size_t)(end - p) + 1) / (2 * (size_t)lay->ncols);
    if (rows > fit_rows) rows = fit_rows;
    if (rows * (size_t)lay->npix > INT_MAX)
        return dg_set_error("%s: %zu rows of %d pixels is more than 2^31-1 bytes", lay->path, rows, lay->npix);
    if (rows > DATA_MAX_IMAGES)
        return dg_set_error("%s: %zu lines, more than the %d-image limit", lay->path, rows, DATA_MAX_IMAGES);
    *max_rows = rows;
    return 0;
}

/* The error of cell c of `line`, which starts at `start`: empty, not an
 * integer, or (range = 1) outside its range. */
static int cell_error(const CsvLayout *lay, long line, int c, const char *start, const char *end, int range) {
    char cell[48], name[24];
    int is_label = lay->has_label && c == 0;
    col_name(c, lay->has_label, name, sizeof name);
    cell_text(start, end, cell, sizeof cell);
    if (range)
        return dg_set_error("%s:%ld: column %d (%s): %s %s is outside %s", lay->path, line, c + 1, name,
                            is_label ? "label" : "pixel value", cell, is_label ? "0..9" : "0..255");
    if (cell[0] == '\0') return dg_set_error("%s:%ld: column %d (%s): empty cell", lay->path, line, c + 1, name);
    return dg_set_error("%s:%ld: column %d (%s): '%s' is not an integer", lay->path, line, c + 1, name, cell);
}

/* One data row at *pp into row[npix] and *label (when the layout has
 * one); leaves *pp at the next line. */
static int parse_row(const char **pp, const char *end, const CsvLayout *lay, long line, uint8_t *row,
                     uint8_t *label) {
    const char *p = *pp, *line_start = p;
    for (int c = 0; c < lay->ncols; c++) {
        const char *start = p;
        int neg = *p == '-';
        p += neg;
        unsigned v = 0;
        const char *digits = p;
        while (p < end && (unsigned)(*p - '0') < 10u) {
            if (v < 100000) v = v * 10 + (unsigned)(*p - '0');
            p++;
        }
        int last = c == lay->ncols - 1;
        int term_ok = last ? is_eol(p, end) : (p < end && *p == ',');
        if (p == digits || !(term_ok || *p == ',' || is_eol(p, end))) return cell_error(lay, line, c, start, end, 0);
        if (!term_ok) /* a well-formed number, the wrong terminator: the row is too short or too long */
            return dg_set_error("%s:%ld: expected %d columns, found %ld", lay->path, line, lay->ncols,
                                line_cells(line_start, end));
        int is_label = lay->has_label && c == 0;
        if ((neg && v != 0) || v > (is_label ? 9u : 255u)) return cell_error(lay, line, c, start, end, 1);
        if (is_label) *label = (uint8_t)v;
        else row[c - lay->has_label] = (uint8_t)v;
        p = last ? line_next(p, end) : p + 1; /* past ',' or the line end */
    }
    *pp = p;
    return 0;
}

/* Only blank lines from p to the end? */
static int only_blank_lines(const char *p, const char *end) {
    while (p < end && (*p == '\n' || *p == '\r')) p++;
    return p == end;
}

int csv_read(const char *path, Dataset *ds) {
    memset(ds, 0, sizeof *ds);
    size_t len;
    char *buf = csv_slurp(path, &len);
    if (!buf) return -1;
    const char *p = buf, *end = buf + len;
    uint8_t *pixels = NULL, *labels = NULL;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;

    CsvLayout lay = {.path = path};
    size_t max_rows = 0;
    if (parse_header(&p, end, &lay) < 0 || row_bound(p, end, &lay, &max_rows) < 0) goto fail;
    pixels = malloc(max_rows * (size_t)lay.npix + 1);
    labels = lay.has_label ? malloc(max_rows + 1) : NULL;
    if (!pixels || (lay.has_label && !labels)) {
        dg_set_error("%s: out of memory for %zu rows of %d pixels", path, max_rows, lay.npix);
        goto fail;
    }

    size_t n = 0;
    for (long line = 2; p < end; line++, n++) {
        if (is_eol(p, end)) { /* a blank line: fine only if nothing but blank lines follows */
            if (only_blank_lines(p, end)) break;
            dg_set_error("%s:%ld: blank line in the middle of the data", path, line);
            goto fail;
        }
        if (n == max_rows) { /* too many rows for the bytes: some row must be short */
            dg_set_error("%s:%ld: expected %d columns, found %ld", path, line, lay.ncols, line_cells(p, end));
            goto fail;
        }
        uint8_t dummy;
        if (parse_row(&p, end, &lay, line, pixels + n * (size_t)lay.npix, labels ? &labels[n] : &dummy) < 0)
            goto fail;
    }
    if (n == 0) {
        dg_set_error("%s:2: no data rows after the header", path);
        goto fail;
    }
    free(buf);
    ds->n = (int)n;
    ds->rows = ds->cols = lay.side;
    ds->pixels = pixels;
    ds->labels = labels;
    return 0;
fail:
    free(buf);
    free(pixels);
    free(labels);
    return -1;
}

/* ---- writers -------------------------------------------------------------------- */

/* Appends the decimal form of v (0..999999) at q; returns the new end. */
static char *put_uint(char *q, unsigned v) {
    char tmp[12];
    int k = 0;
    do { tmp[k++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (k) *q++ = tmp[--k];
    return q;
}

/* Closes fp, reporting a write error or a failed close; on failure removes
 * the partial file. */
static int csv_finish(FILE *fp, const char *path) {
    int bad = ferror(fp);
    int e = errno;
    if (fclose(fp) != 0 && !bad) { bad = 1; e = errno; }
    if (bad) {
        remove(path);
        return dg_set_error("%s: write failed: %s", path, strerror(e));
    }
    return 0;
}

int csv_write(const char *path, const Dataset *ds) {
    int npix = ds->rows * ds->cols;
    if (ds->n < 0 || npix < 1 || (ds->n > 0 && !ds->pixels))
        return dg_set_error("%s: refusing to write a data set of %d images of %dx%d", path,
                            ds->n, ds->rows, ds->cols);
    if (ds->rows != ds->cols)
        return dg_set_error("%s: CSV images must be square, these are %dx%d", path, ds->rows,
                            ds->cols);
    if (ds->n < 1)
        return dg_set_error("%s: refusing to write an empty data set (csv_read would reject it)",
                            path);
    for (int i = 0; ds->labels && i < ds->n; i++)
        if (ds->labels[i] > 9)
            return dg_set_error("%s: label %u at index %d is not in 0..9", path, ds->labels[i], i);
    FILE *fp = fopen(path, "wb");
    if (!fp) return dg_set_error("%s: cannot create: %s", path, strerror(errno));
    /* One line at a time through a hand formatter: fprintf per cell is
     * several times slower for 47 million cells. Max 4 bytes per cell. */
    size_t cap = (size_t)(npix + 1) * 16 + 16;
    char *line = dg_xmalloc(cap);
    char *q = line;
    if (ds->labels) { memcpy(q, "label,", 6); q += 6; }
    for (int i = 0; i < npix; i++) {
        memcpy(q, "pixel", 5);
        q = put_uint(q + 5, (unsigned)i);
        *q++ = i + 1 < npix ? ',' : '\n';
    }
    fwrite(line, 1, (size_t)(q - line), fp);
    for (int r = 0; r < ds->n; r++) {
        const uint8_t *row = ds->pixels + (size_t)r * npix;
        q = line;
        if (ds->labels) { q = put_uint(q, ds->labels[r]); *q++ = ','; }
        for (int i = 0; i < npix; i++) {
            q = put_uint(q, row[i]);
            *q++ = ',';
        }
        q[-1] = '\n';
        if (fwrite(line, 1, (size_t)(q - line), fp) != (size_t)(q - line)) break;
    }
    free(line);
    return csv_finish(fp, path);
}

int csv_write_submission(const char *path, const uint8_t *pred, int n) {
    for (int i = 0; i < n; i++)
        if (pred[i] > 9)
            return dg_set_error("%s: prediction %u for image %d is not a digit", path, pred[i],
                                i + 1);
    /* atomically: a half-written submission never replaces a good one */
    AtomicFile af;
    if (atomic_file_open(&af, path) < 0) return -1;
    fputs("ImageId,Label\n", af.f);
    for (int i = 0; i < n; i++) fprintf(af.f, "%d,%u\n", i + 1, pred[i]);
    return atomic_file_commit(&af);
}
