/* test_export_c.c — `digits export --format c` (src/quant/export_c.c) on a
 * hand-built int8 graph with every operator type (conv with padding and
 * stride, max and average pooling, lookup table, residual add, channel
 * concatenation, dense) and random parameters:
 *   - the arena plan: no tensor overlaps one alive at the same time (but a
 *     lookup table over its dying input), and the plan is smaller than
 *     keeping every tensor;
 *   - the files: qref.h verbatim inside digits_model.c, no header but
 *     <stdint.h> and <stddef.h>, the sizes in the header;
 *   - the code: compiled by the host's cc as strict freestanding C99 with
 *     tests/mcu/firmware.c (tests/mcu/build.sh host; -mgeneral-regs-only:
 *     no floating point), its predictions and
 *     logits on 20 random images equal qref.h's run here, bit for bit;
 *   - the limits: --max-ram / --max-flash below the needs write nothing.
 * Left out: quantized zoo models and the Cortex-M runs (tests/e2e/mcu.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/util.h"
#include "quant/export_c.h"
#include "testutil.h"

#define N_OPS 9
#define N_IMG 20

/* The parameter arrays of the test graph (one block per op, owned here). */
static int8_t g_w[N_OPS][8 * 8 * 9 * 4], g_lo[N_OPS][16], g_hi[N_OPS][16], g_lut[N_OPS][256];
static int32_t g_b[N_OPS][16], g_m[N_OPS][16], g_s[N_OPS][16];
static QOp g_ops[N_OPS];

/* One op: its type, inputs and shapes (output k x oh x ow). */
static QOp op_shape(int type, int in0, int in1, int c, int hw, int c1, int k, int ohw, int kk, int stride, int pad) {
    QOp op = {0};
    op.type = type, op.in0 = in0, op.in1 = in1, op.c = c, op.h = op.w = hw, op.c1 = c1;
    op.k = k, op.oh = op.ow = ohw, op.kh = op.kw = kk, op.stride = stride, op.pad_t = op.pad_l = pad;
    return op;
}

/* Random parameters of op i: zero points, weights, biases, multipliers in
 * [2^30, 2^31) with shifts that keep outputs in range, clamps, a table. */
static void op_params(QOp *op, int i, Rng *r) {
    op->out = i;
    op->in_zp = (int32_t)rng_below(r, 41) - 20, op->in1_zp = (int32_t)rng_below(r, 41) - 20;
    op->out_zp = (int32_t)rng_below(r, 21) - 10;
    for (size_t j = 0; j < sizeof g_w[i]; j++) g_w[i][j] = (int8_t)((int)rng_below(r, 255) - 127);
    for (int j = 0; j < 16; j++) {
        g_b[i][j] = (int32_t)rng_below(r, 20001) - 10000;
        g_m[i][j] = (int32_t)((1u << 30) + rng_below(r, 1u << 30));
        g_lo[i][j] = (int8_t)(-128 + (int)rng_below(r, 40)), g_hi[i][j] = (int8_t)(127 - (int)rng_below(r, 40));
    }
    int conv_shift = 41; /* acc ~ 2^15 -> outputs ~ +-40 */
    for (int j = 0; j < 16; j++) g_s[i][j] = conv_shift - (int32_t)rng_below(r, 4);
    if (op->type == QOP_AVGPOOL) g_s[i][0] = 32;          /* / 4 */
    if (op->type == QOP_ADD) g_s[i][0] = g_s[i][1] = 31, g_s[i][2] = 51; /* the sum ~ 2^27 back to ~ 2^7 */
    if (op->type == QOP_CONCAT) g_s[i][0] = g_s[i][1] = 31;
    for (int j = 0; j < 256; j++) g_lut[i][j] = (int8_t)((int)rng_below(r, 256) - 128);
    op->weight = g_w[i], op->bias = g_b[i], op->mult = g_m[i], op->shift = g_s[i];
    op->act_min = g_lo[i], op->act_max = g_hi[i], op->lut = g_lut[i];
}

/* The test graph: 1x28x28 -> conv 4x28x28 -> maxpool 4x14x14 -> lut ->
 * conv 4x14x14 -> add(pool, conv) -> concat(add, lut) 8x14x14 -> avgpool
 * 8x7x7 -> conv stride 2 6x3x3 -> dense 10. */
static void make_model(QModel *q, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed, "test_export_c");
    g_ops[0] = op_shape(QOP_CONV, -1, -1, 1, 28, 0, 4, 28, 3, 1, 1);
    g_ops[1] = op_shape(QOP_MAXPOOL, 0, -1, 4, 28, 0, 4, 14, 2, 2, 0);
    g_ops[2] = op_shape(QOP_LUT, 1, -1, 4, 14, 0, 4, 14, 0, 0, 0);
    g_ops[3] = op_shape(QOP_CONV, 2, -1, 4, 14, 0, 4, 14, 3, 1, 1);
    g_ops[4] = op_shape(QOP_ADD, 1, 3, 4, 14, 4, 4, 14, 0, 0, 0);
    g_ops[5] = op_shape(QOP_CONCAT, 4, 2, 4, 14, 4, 8, 14, 0, 0, 0);
    g_ops[6] = op_shape(QOP_AVGPOOL, 5, -1, 8, 14, 0, 8, 7, 2, 2, 0);
    g_ops[7] = op_shape(QOP_CONV, 6, -1, 8, 7, 0, 6, 3, 3, 2, 0);
    g_ops[8] = op_shape(QOP_DENSE, 7, -1, 6, 3, 0, 10, 1, 0, 0, 0);
    for (int i = 0; i < N_OPS; i++) op_params(&g_ops[i], i, &r);
    memset(q, 0, sizeof *q);
    q->n_ops = N_OPS, q->ops = g_ops, q->in_c = 1, q->in_h = q->in_w = 28;
    snprintf(q->name, sizeof q->name, "every-op");
}

/* Bytes of tensor t (-1: the image). */
static size_t bytes_of(const QModel *q, int t) {
    return t < 0 ? 784 : (size_t)q->ops[t].k * q->ops[t].oh * q->ops[t].ow;
}

/* qref.h's run of one image, every tensor in its own buffer. */
static int run_ref(const QModel *q, const uint8_t *px, int8_t logits[10]) {
    static int8_t buf[N_OPS + 1][4 * 28 * 28];
    for (int i = 0; i < 784; i++) buf[0][i] = qref_pixel(px[i]);
    for (int i = 0; i < q->n_ops; i++) {
        const QOp *op = &q->ops[i];
        assert_int_equal(qref_op_run(op, buf[op->in0 + 1], op->in1 >= 0 ? buf[op->in1 + 1] : NULL, buf[i + 1]), 0);
    }
    memcpy(logits, buf[q->n_ops], 10);
    return qref_argmax(logits, 10);
}

/* Tensors alive at op i (read at i or later, or the logits) never overlap
 * op i's output; the arena is smaller than all tensors together. */
static void test_arena_plan(void **state) {
    QModel q;
    make_model(&q, 1);
    size_t off[N_OPS + 1], total = 0, arena = qexport_plan_arena(&q, off);
    for (int i = 0; i < N_OPS; i++) {
        for (int t = -1; t < i; t++) {
            int alive = t == N_OPS - 1;
            for (int j = i; j < N_OPS; j++) alive |= q.ops[j].in0 == t || q.ops[j].in1 == t;
            /* a lookup table may overwrite its input when it is the last reader */
            int in_place = q.ops[i].type == QOP_LUT && q.ops[i].in0 == t && off[t + 1] == off[i + 1];
            for (int j = i + 1; j < N_OPS; j++) in_place &= q.ops[j].in0 != t && q.ops[j].in1 != t;
            if (!alive || in_place) continue;
            size_t a0 = off[t + 1], a1 = a0 + bytes_of(&q, t), b0 = off[i + 1], b1 = b0 + bytes_of(&q, i);
            assert_true(a1 <= b0 || b1 <= a0);
        }
        assert_true(off[i + 1] + bytes_of(&q, i) <= arena);
        assert_int_equal(off[i + 1] % 4, 0);
    }
    for (int t = -1; t < N_OPS; t++) total += bytes_of(&q, t);
    print_message("arena %zu bytes of %zu in all\n", arena, total);
    assert_true(arena < total);
    assert_int_equal(qexport_size(&q).ram_bytes, arena);
    (void)state;
}

/* Exported, built for the host and run on N_IMG random images: the same
 * predictions and logits as qref.h's run here. */
static void test_export_runs_bit_exact(void **state) {
    QModel q;
    make_model(&q, 2);
    const char *dir = tu_tmp_path("model");
    QExportSize sz;
    assert_int_equal(qexport_c(&q, dir, "test.safetensors", 0, 0, &sz), 0);
    /* the images as an MNIST test file: a 16-byte header, then N_IMG x 784 */
    uint8_t px[N_IMG * 784];
    Rng r;
    rng_seed(&r, 3, "test_export_c images");
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)rng_below(&r, 256);
    FILE *f = fopen(tu_tmp_path("t10k-images-idx3-ubyte"), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite("0123456789abcdef", 1, 16, f), 16);
    assert_int_equal(fwrite(px, 1, sizeof px, f), sizeof px);
    assert_int_equal(fclose(f), 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "bash tests/mcu/build.sh host -O2 %s %s %d %s && %s > %s", dir, tu_tmpdir(), N_IMG,
             tu_tmp_path("fw"), tu_tmp_path("fw"), tu_tmp_path("out.txt"));
    assert_int_equal(system(cmd), 0);
    f = fopen(tu_tmp_path("out.txt"), "r");
    assert_non_null(f);
    int diffs = 0, preds[10] = {0};
    for (int i = 0; i < N_IMG; i++) {
        int idx, d, l[10];
        assert_int_equal(fscanf(f, "%d %d %d %d %d %d %d %d %d %d %d %d", &idx, &d, &l[0], &l[1], &l[2], &l[3], &l[4],
                                &l[5], &l[6], &l[7], &l[8], &l[9]),
                         12);
        int8_t want[10];
        int wd = run_ref(&q, px + (size_t)i * 784, want);
        assert_int_equal(idx, i);
        diffs += d != wd;
        for (int k = 0; k < 10; k++) diffs += l[k] != want[k];
        preds[wd]++;
    }
    fclose(f);
    int distinct = 0;
    for (int k = 0; k < 10; k++) distinct += preds[k] > 0;
    print_message("%d images: %d differences, %d distinct predictions\n", N_IMG, diffs, distinct);
    assert_int_equal(diffs, 0);
    assert_true(distinct >= 2); /* the logits are not saturated into one answer */
    (void)state;
}

/* digits_model.c holds src/quant/qref.h verbatim; the header states the sizes. */
static void test_files(void **state) {
    QModel q;
    make_model(&q, 4);
    const char *dir = tu_tmp_path("files");
    QExportSize sz;
    assert_int_equal(qexport_c(&q, dir, "m.safetensors", 0, 0, &sz), 0);
    char *src, *hdr, *ref, path[4200], line[64];
    size_t n;
    snprintf(path, sizeof path, "%s/digits_model.c", dir);
    assert_int_equal(read_whole_file(path, 1 << 24, &src, &n), 0);
    snprintf(path, sizeof path, "%s/digits_model.h", dir);
    assert_int_equal(read_whole_file(path, 1 << 20, &hdr, &n), 0);
    assert_int_equal(read_whole_file("src/quant/qref.h", 1 << 20, &ref, &n), 0);
    assert_non_null(strstr(src, ref));
    snprintf(line, sizeof line, "#define DIGITS_MODEL_RAM_BYTES %zu\n", sz.ram_bytes);
    assert_non_null(strstr(hdr, line));
    snprintf(line, sizeof line, "#define DIGITS_MODEL_FLASH_BYTES %zu\n", sz.flash_bytes);
    assert_non_null(strstr(hdr, line));
    /* no library: <stdint.h> and <stddef.h> only (no floating point: the
     * host build uses -mgeneral-regs-only, which refuses any) */
    for (const char *p = src; (p = strstr(p, "#include <")); p++)
        assert_true(strncmp(p, "#include <stdint.h>", 19) == 0 || strncmp(p, "#include <stddef.h>", 19) == 0);
    assert_null(strstr(src, "malloc("));
    free(src), free(hdr), free(ref);
    (void)state;
}

/* A limit below the needs: -1, the need and the limit named, no files. */
static void test_limits(void **state) {
    QModel q;
    make_model(&q, 5);
    QExportSize sz = qexport_size(&q);
    const char *dir = tu_tmp_path("limited");
    assert_int_equal(qexport_c(&q, dir, "m.safetensors", 0, sz.ram_bytes - 1, NULL), -1);
    assert_non_null(strstr(dg_errmsg(), "--max-ram"));
    assert_int_equal(qexport_c(&q, dir, "m.safetensors", sz.flash_bytes - 1, 0, NULL), -1);
    assert_non_null(strstr(dg_errmsg(), "--max-flash"));
    assert_false(is_dir(dir));
    assert_int_equal(qexport_c(&q, dir, "m.safetensors", sz.flash_bytes, sz.ram_bytes, NULL), 0);
    q.ops[N_OPS - 1].k = 9; /* no 10 logits */
    assert_int_equal(qexport_c(&q, dir, "m.safetensors", 0, 0, NULL), -1);
    assert_non_null(strstr(dg_errmsg(), "10 logits"));
    (void)state;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_plan),
        cmocka_unit_test(test_export_runs_bit_exact),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
