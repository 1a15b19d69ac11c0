/* export_c.c — an int8 model (qmodel.h) as C99 source for a microcontroller
 * (`digits export --format c`): the arena plan, the size estimate, and the
 * two files. digits_model.c holds src/quant/qref.h verbatim (embedded at
 * build time as build/gen/qref_text.h), so the device runs the very
 * arithmetic the host's int8 path is checked against; then every tensor as
 * a const array, the operators as const QOp descriptions, one static arena,
 * and digits_model_run calling the qref_* operator of each in order.
 * Left out on purpose: ensembles, code-size estimates (the compiler's, see
 * arm-none-eabi-size), per-target tuning (qref.h's loops are the kernels). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/util.h"
#include "core/version.h"
#include "quant/export_c.h"
#include "qref_text.h" /* qref_h[], qref_h_len: src/quant/qref.h's bytes */

#define ALIGN4(n) (((n) + 3u) & ~(size_t)3u)
/* a QOp on a 32-bit target: 21 int32 fields and 7 pointers */
#define QOP_BYTES_32 (21u * 4u + 7u * 4u)

/* ==== sizes =============================================================== */

/* Element counts of op's arrays (0: absent). */
typedef struct {
    size_t weight, bias, mult, act, lut;
} OpArrays;

static OpArrays op_arrays(const QOp *op) {
    OpArrays a = {0, 0, 0, 0, 0};
    switch (op->type) {
    case QOP_CONV: a.weight = (size_t)op->k * op->c * op->kh * op->kw, a.bias = a.mult = a.act = (size_t)op->k; break;
    case QOP_DENSE: a.weight = (size_t)op->k * op->c * op->h * op->w, a.bias = a.mult = a.act = (size_t)op->k; break;
    case QOP_AVGPOOL: a.mult = a.act = 1; break;
    case QOP_LUT: a.lut = 256; break;
    case QOP_ADD: a.mult = 3, a.act = 1; break;
    case QOP_CONCAT: a.mult = 2, a.act = 1; break;
    default: break; /* maxpool: none */
    }
    return a;
}

/* Bytes of tensor t: -1 the input image, i >= 0 op i's output. */
static size_t tensor_bytes(const QModel *q, int t) {
    if (t < 0) return (size_t)q->in_c * q->in_h * q->in_w;
    return (size_t)q->ops[t].k * q->ops[t].oh * q->ops[t].ow;
}

QExportSize qexport_size(const QModel *q) {
    QExportSize s = {0, 0};
    for (int i = 0; i < q->n_ops; i++) {
        OpArrays a = op_arrays(&q->ops[i]);
        /* each array starts 4-byte aligned */
        s.flash_bytes += ALIGN4(a.weight) + 4 * a.bias + 2 * 4 * a.mult + 2 * ALIGN4(a.act) + ALIGN4(a.lut);
        s.flash_bytes += QOP_BYTES_32;
    }
    size_t *off = dg_xmalloc(((size_t)q->n_ops + 1) * sizeof *off);
    s.ram_bytes = qexport_plan_arena(q, off);
    free(off);
    return s;
}

/* ==== the arena =========================================================== */

/* Index of the last op reading tensor t (n_ops for the logits, which are
 * read after the last op). */
static int last_use(const QModel *q, int t) {
    int last = t == q->n_ops - 1 ? q->n_ops : t;
    for (int i = t + 1; i < q->n_ops; i++)
        if (q->ops[i].in0 == t || q->ops[i].in1 == t) last = i;
    return last;
}

/* Lowest 4-aligned offset where `need` bytes overlap none of the live
 * tensors (live[t + 1] nonzero, placed at off[t + 1]). */
static size_t first_fit(const QModel *q, const size_t *off, const char *live, size_t need) {
    size_t at = 0;
    for (int moved = 1; moved;) {
        moved = 0;
        for (int t = -1; t < q->n_ops; t++) {
            if (!live[t + 1]) continue;
            size_t lo = off[t + 1], hi = lo + tensor_bytes(q, t);
            if (at < hi && lo < at + need) at = ALIGN4(hi), moved = 1;
        }
    }
    return at;
}

size_t qexport_plan_arena(const QModel *q, size_t *off) {
    char *live = dg_xcalloc((size_t)q->n_ops + 1, 1);
    size_t top = tensor_bytes(q, -1);
    off[0] = 0, live[0] = 1;
    for (int i = 0; i < q->n_ops; i++) {
        size_t need = tensor_bytes(q, i);
        const QOp *op = &q->ops[i];
        /* a table lookup whose input dies here runs in place (element-wise:
         * y[j] depends on x[j] alone) */
        if (op->type == QOP_LUT && last_use(q, op->in0) == i) off[i + 1] = off[op->in0 + 1], live[op->in0 + 1] = 0;
        else off[i + 1] = first_fit(q, off, live, need);
        live[i + 1] = 1;
        if (off[i + 1] + need > top) top = off[i + 1] + need;
        for (int t = -1; t <= i; t++) /* free what no later op reads */
            if (live[t + 1] && last_use(q, t) <= i) live[t + 1] = 0;
    }
    free(live);
    return ALIGN4(top);
}

/* ==== writing ============================================================= */

/* Writes s inside a C comment: control bytes and '*' (which could close
 * it) become '_'. */
static void put_comment_text(FILE *f, const char *s) {
    for (; *s; s++) fputc((unsigned char)*s < 32 || *s == '*' || *s == 127 ? '_' : *s, f);
}

/* Writes `name` as a const array of n values of C type `type` (int8_t or
 * int32_t), 16 per line; v8 or v32 holds them. */
static void put_array(FILE *f, const char *type, const char *name, int i, const int8_t *v8, const int32_t *v32,
                      size_t n) {
    fprintf(f, "static const %s %s%d[%zu] = {", type, name, i, n);
    for (size_t j = 0; j < n; j++) {
        long long v = v8 ? v8[j] : v32[j];
        fputs(j % 16 ? " " : "\n    ", f);
        /* INT32_MIN has no literal of type int */
        if (v == INT32_MIN) fputs("-2147483647 - 1,", f);
        else fprintf(f, "%lld,", v);
    }
    fputs("\n};\n", f);
}

/* The const arrays of op i. */
static void put_op_arrays(FILE *f, const QOp *op, int i) {
    OpArrays a = op_arrays(op);
    if (a.weight) put_array(f, "int8_t", "w", i, op->weight, NULL, a.weight);
    if (a.bias) put_array(f, "int32_t", "b", i, NULL, op->bias, a.bias);
    if (a.mult) put_array(f, "int32_t", "m", i, NULL, op->mult, a.mult), put_array(f, "int32_t", "s", i, NULL, op->shift, a.mult);
    if (a.act) put_array(f, "int8_t", "lo", i, op->act_min, NULL, a.act), put_array(f, "int8_t", "hi", i, op->act_max, NULL, a.act);
    if (a.lut) put_array(f, "int8_t", "lut", i, op->lut, NULL, a.lut);
}

/* The QOp description of op i (designated initializers: robust to field
 * order), pointing at its arrays. */
static void put_op(FILE *f, const QOp *op, int i) {
    OpArrays a = op_arrays(op);
    fprintf(f, "    {.type = %d, .in0 = %d, .in1 = %d, .out = %d, .c = %d, .h = %d, .w = %d, .c1 = %d,\n"
               "     .k = %d, .oh = %d, .ow = %d, .kh = %d, .kw = %d, .stride = %d, .pad_t = %d, .pad_l = %d,\n"
               "     .in_zp = %d, .in1_zp = %d, .out_zp = %d",
            (int)op->type, (int)op->in0, (int)op->in1, (int)op->out, (int)op->c, (int)op->h, (int)op->w, (int)op->c1,
            (int)op->k, (int)op->oh, (int)op->ow, (int)op->kh, (int)op->kw, (int)op->stride, (int)op->pad_t,
            (int)op->pad_l, (int)op->in_zp, (int)op->in1_zp, (int)op->out_zp);
    if (a.weight) fprintf(f, ", .weight = w%d", i);
    if (a.bias) fprintf(f, ", .bias = b%d", i);
    if (a.mult) fprintf(f, ", .mult = m%d, .shift = s%d", i, i);
    if (a.act) fprintf(f, ", .act_min = lo%d, .act_max = hi%d", i, i);
    if (a.lut) fprintf(f, ", .lut = lut%d", i);
    fputs("},\n", f);
}

/* The qref_* function that runs op (qref_op_run's switch, unrolled here so
 * only the operators the model uses are linked). */
static const char *op_function(const QOp *op) {
    switch (op->type) {
    case QOP_CONV: return "qref_conv";
    case QOP_DENSE: return "qref_dense";
    case QOP_MAXPOOL: return "qref_maxpool";
    case QOP_AVGPOOL: return "qref_avgpool";
    case QOP_LUT: return "qref_lut";
    case QOP_ADD: return "qref_add";
    case QOP_CONCAT: return "qref_concat";
    default: return NULL;
    }
}

/* The entry point: pixels into the arena as q = p - 128, each op in order,
 * the last op's 10 bytes out as logits, their argmax returned. */
static void put_run(FILE *f, const QModel *q, const size_t *off) {
    fprintf(f, "\nint digits_model_run(const uint8_t pixels[784], int8_t logits[10]) {\n"
               "    int i;\n"
               "    for (i = 0; i < 784; i++) arena[%zu + i] = qref_pixel(pixels[i]);\n",
            off[0]);
    for (int i = 0; i < q->n_ops; i++) {
        const QOp *op = &q->ops[i];
        fprintf(f, "    %s(&ops[%d], arena + %zu, ", op_function(op), i, off[op->in0 + 1]);
        if (op->type == QOP_ADD || op->type == QOP_CONCAT) fprintf(f, "arena + %zu, ", off[op->in1 + 1]);
        fprintf(f, "arena + %zu); /* ", off[i + 1]);
        put_comment_text(f, q->what ? q->what[i] : "");
        fputs(" */\n", f);
    }
    fprintf(f, "    for (i = 0; i < 10; i++) logits[i] = arena[%zu + i];\n"
               "    return qref_argmax(logits, 10);\n}\n",
            off[q->n_ops]);
}

/* digits_model.h: the entry point and the model's needs. */
static void put_header(FILE *f, const QModel *q, const char *origin, QExportSize sz) {
    fputs("/* digits_model.h — the digit recognizer ", f);
    put_comment_text(f, q->name);
    fprintf(f, " (int8) as C99 for a microcontroller,\n"
               " * written by `digits export --format c` (digits %s) from\n * ",
            DG_VERSION);
    put_comment_text(f, origin);
    fprintf(f, ".\n"
               " * No malloc, no floating point, no libm, no library: <stdint.h> and\n"
               " * <stddef.h> only. Not reentrant: one static arena serves every call. */\n"
               "#ifndef DIGITS_MODEL_H\n#define DIGITS_MODEL_H\n\n#include <stdint.h>\n\n"
               "/* Flash: the constants (weights, biases, requantization tables, the\n"
               " * operator table) on a 32-bit target; the code adds 1-3 KB (see\n"
               " * arm-none-eabi-size). RAM: the static activation arena (.bss); the\n"
               " * stack of digits_model_run adds under 400 bytes (gcc -fstack-usage,\n"
               " * Cortex-M0 and M4). */\n"
               "#define DIGITS_MODEL_FLASH_BYTES %zu\n#define DIGITS_MODEL_RAM_BYTES %zu\n\n"
               "/* Recognize a 28x28 image (row-major, 0 = background .. 255 = ink: a\n"
               " * white digit on black, as MNIST): writes the 10 int8 class scores\n"
               " * (larger = likelier) and returns the predicted digit 0-9. */\n"
               "int digits_model_run(const uint8_t pixels[784], int8_t logits[10]);\n\n#endif\n",
            sz.flash_bytes, sz.ram_bytes);
}

/* digits_model.c: qref.h verbatim, the constants, the arena, the entry point. */
static void put_source(FILE *f, const QModel *q, const char *origin, const size_t *off, QExportSize sz) {
    fputs("/* digits_model.c — the digit recognizer ", f);
    put_comment_text(f, q->name);
    fprintf(f, " (int8), written by `digits export --format c`\n"
               " * (digits %s) from\n * ",
            DG_VERSION);
    put_comment_text(f, origin);
    fprintf(f, ":\n * digits' reference int8 arithmetic (its src/quant/qref.h, verbatim\n"
               " * below), the weights as const arrays, one static activation arena of\n"
               " * %zu bytes. C99, freestanding. */\n"
               "#include \"digits_model.h\"\n\n/* ---- begin qref.h ---- */\n",
            sz.ram_bytes);
    fwrite(qref_h, 1, qref_h_len, f);
    fputs("/* ---- end qref.h ---- */\n\n", f);
    for (int i = 0; i < q->n_ops; i++) put_op_arrays(f, &q->ops[i], i);
    fprintf(f, "\nstatic const QOp ops[%d] = {\n", q->n_ops);
    for (int i = 0; i < q->n_ops; i++) put_op(f, &q->ops[i], i);
    fprintf(f, "};\n\n/* every tensor's place: see the calls below */\nstatic int8_t arena[%zu];\n", sz.ram_bytes);
    put_run(f, q, off);
}

/* Check that q is exportable: the 28x28 input, known operator types. */
static int check_exportable(const QModel *q, const char *origin) {
    if (q->in_c * q->in_h * q->in_w != 784) return dg_set_error("%s: the input is not one 28x28 image", origin);
    if (q->n_ops < 1) return dg_set_error("%s: no operators", origin);
    for (int i = 0; i < q->n_ops; i++)
        if (!op_function(&q->ops[i])) return dg_set_error("%s: op %d: unknown type %d", origin, i, (int)q->ops[i].type);
    if (tensor_bytes(q, q->n_ops - 1) != 10) return dg_set_error("%s: the last op gives no 10 logits", origin);
    return 0;
}

/* Opens dir/name for an atomic write (the caller commits or aborts);
 * -1 with "path: problem". */
static int open_out(AtomicFile *af, const char *dir, const char *name) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return dg_set_error("%s: path too long", dir);
    return atomic_file_open(af, path);
}

int qexport_c(const QModel *q, const char *dir, const char *origin, size_t max_flash, size_t max_ram,
              QExportSize *size) {
    if (check_exportable(q, origin) < 0) return -1;
    size_t *off = dg_xmalloc(((size_t)q->n_ops + 1) * sizeof *off);
    QExportSize sz = qexport_size(q);
    qexport_plan_arena(q, off);
    if (size) *size = sz;
    int rc = 0;
    if (max_flash && sz.flash_bytes > max_flash)
        rc = dg_set_error("%s: needs %zu bytes of flash for its constants, over --max-flash %zu", origin,
                          sz.flash_bytes, max_flash);
    else if (max_ram && sz.ram_bytes > max_ram)
        rc = dg_set_error("%s: needs %zu bytes of RAM for its activation arena, over --max-ram %zu", origin,
                          sz.ram_bytes, max_ram);
    else if (make_dirs(dir) < 0)
        rc = -1;
    AtomicFile c, h;
    if (rc == 0 && open_out(&c, dir, "digits_model.c") < 0) rc = -1;
    if (rc == 0) {
        put_source(c.f, q, origin, off, sz);
        if (open_out(&h, dir, "digits_model.h") < 0) {
            atomic_file_abort(&c);
            rc = -1;
        } else {
            put_header(h.f, q, origin, sz);
            if (atomic_file_commit(&h) < 0) {
                atomic_file_abort(&c);
                rc = -1;
            } else if (atomic_file_commit(&c) < 0) {
                rc = -1;
            }
        }
    }
    free(off);
    return rc;
}
