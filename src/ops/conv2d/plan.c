/* conv2d/plan.c — which path each convolution pass takes, and where its
 * scratch sits in a thread's workspace slice (see conv2d/plan.h).
 *
 * The forward and backward each ask once per call (conv_plan_forward,
 * conv_plan_backward); the chunks then only follow the plan. The
 * thresholds below were measured on the target with bench/bench_kernels;
 * each predicate says what it chose against what. */
#include "ops/conv2d/plan.h"

#include <stdlib.h>
#include <string.h>

#include "core/blocks.h"
#include "ops/conv2d/c1.h"
#include "ops/conv2d/direct.h"
#include "ops/conv2d/ilv.h"
#include "ops/conv2d/im2col.h"
#include "ops/conv2d/kvec.h"
#include "ops/conv2d/phase.h"
#include "ops/conv2d/wino.h"
#include "ops/conv2d/wino4.h"
#include "ops/conv2d/wino5.h"
#include "ops/gemm_bf16.h"

ConvShape conv_shape(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    const int P = conv_out_size(H, R, stride, pad), Q = conv_out_size(W, S, stride, pad);
    return (ConvShape){C, H, W, K, R, S, stride, pad, P, Q};
}

int conv_path_disabled(const char *off) {
    static const char *mode; /* read once; "" when unset */
    if (!mode) {
        const char *v = getenv("DIGITS_CONV");
        mode = v ? v : "";
    }
    return strcmp(mode, off) == 0 || strcmp(mode, "im2col") == 0;
}

/* ---- bf16 (--precision bf16) ----------------------------------------------
 * The im2col layers run their three products through gemm_bf16 (bf16
 * inputs, fp32 accumulation; twice the FLOP rate of fp32 FMAs on the EPYC
 * targets):
 *   forward  y (K,PQ)      = W (K,CRS) . col (CRS,PQ)
 *   dx       dcol (CRS,PQ) = W^T (CRS,K) . dy (K,PQ)       then col2im
 *   dw^T     (CRS,K)      += col (CRS,PQ) . dy^T (PQ,K)    (partials kept transposed)
 * Weights are converted once per call and chunk; activations per image.
 * The direct (shallow) layers stay fp32: they are a few % of the FLOPs. */
static int use_bf16;

int conv2d_set_bf16(int on) {
    use_bf16 = on && gemm_bf16_available();
    return use_bf16;
}

int conv_bf16(void) { return use_bf16; }

/* ---- sizes ------------------------------------------------------------------ */

int conv_pointwise(const ConvShape *s) { return s->R == 1 && s->S == 1 && s->stride == 1 && s->pad == 0; }

/* col is built one band of output rows at a time, at most BAND_FLOATS
 * (4 MB) each: the bound keeps the workspace modest for large images. It
 * is deliberately not L2-sized: measured on the target (32->32 3x3, 28x28),
 * 256 KB bands made the narrower sgemms ~15% slower than the cache saved,
 * so every image of the model zoo runs as one band. */
#define BAND_FLOATS (1 << 20)

int conv_band_rows(const ConvShape *s) {
    long t = BAND_FLOATS / ((long)s->C * s->R * s->S * s->Q);
    return t < 1 ? 1 : t > s->P ? s->P : (int)t;
}

/* Deep layers with small outputs (7x7, 4x4) make thin products: W (K,CRS)
 * times a col of only PQ columns, for which the BLAS repacks all of W for
 * every image (the 5x5/2 128->128 layer of kaggle-deep, 4x4 outputs, ran
 * at ~25 % of peak). Such layers (fp32, im2col) take G images per product
 * instead: col (CRS, G*PQ) with the images side by side, the product
 * (K, G*PQ) copied out to each image's (K,PQ) — about GROUP_COLS columns. */
#define GROUP_COLS 256

int conv_group_images(const ConvShape *s) {
    if (conv_pointwise(s)) return 1;
    const int CRS = s->C * s->R * s->S, PQ = s->P * s->Q;
    if (conv_band_rows(s) < s->P) return 1;
    if (conv2d_direct_ok(s->H, s->W, s->R, s->S, s->stride, s->pad, CRS) ||
        conv2d_direct_dx_ok(s->H, s->W, s->R, s->S, s->stride, s->pad, s->K * s->R * s->S))
        return 1;
    long g = GROUP_COLS / PQ, cap = BAND_FLOATS / ((long)CRS * PQ);
    if (g > cap) g = cap;
    return g < 2 ? 1 : (int)g;
}

/* Does this layer take the bf16 products (im2col layers in one band)? */
static int bf16_layer(const ConvShape *s) {
    return gemm_bf16_available() && !conv_pointwise(s) && conv_band_rows(s) == s->P;
}

/* Images per call of the direct weight-gradient kernel: deep layers with
 * one-vector rows (14x14) take DW_GROUP at once, one lane reduction per
 * block for all of them: 64->64 at 14x14 128 -> 136-147 GFLOP/s, 1 core
 * (8 images: 123). 28x28 stays at 1: four images' dy rows of a block no
 * longer fit L1 (147 -> 123). */
#define DW_GROUP 4
static int dw_group(const ConvShape *s) {
    const int CRS = s->C * s->R * s->S;
    return conv2d_direct_dw_ok(s->H, s->W, s->R, s->S, s->stride, s->pad, CRS) && !conv2d_direct_shallow(CRS) &&
                   s->Q <= 16
               ? DW_GROUP
               : 1;
}

/* ---- the areas of a slice ------------------------------------------------- */

/* COL: one band of col, (C*R*S, rows*Q) — or, for grouped layers, the
 * group's col (CRS, G*PQ) and its output or output gradient (K, G*PQ). */
static size_t col_floats(const ConvShape *s) {
    const int CRS = s->C * s->R * s->S;
    size_t band = (size_t)CRS * conv_band_rows(s) * s->Q;
    const int g = conv_group_images(s);
    size_t grouped = g > 1 ? (size_t)(CRS + s->K) * g * s->P * s->Q : 0;
    return band > grouped ? band : grouped;
}

/* PACKED: the direct kernels' weights (a pass may use them and col both,
 * e.g. direct dw and im2col dx). */
static size_t packed_floats(const ConvShape *s) {
    size_t a = 0, b = 0;
    if (conv2d_direct_ok(s->H, s->W, s->R, s->S, s->stride, s->pad, s->C * s->R * s->S))
        a = conv2d_direct_packed_floats(s->K, s->C, s->R, s->S);
    if (conv2d_direct_dx_ok(s->H, s->W, s->R, s->S, s->stride, s->pad, s->K * s->R * s->S))
        b = conv2d_direct_packed_floats(s->C, s->K, s->R, s->S);
    return a > b ? a : b;
}

/* BF16: the scratch of conv_bf16_scratch. */
static size_t bf16_floats(const ConvShape *s) {
    if (!bf16_layer(s)) return 0;
    const int PQ = conv_group_images(s) * s->P * s->Q; /* columns of one product */
    const int CRS = s->C * s->R * s->S, K = s->K;
    size_t bp = bf16_packed_b_words(CRS, PQ), b2 = bf16_packed_b_words(K, PQ), b3 = bf16_packed_b_words(PQ, K);
    if (b2 > bp) bp = b2;
    if (b3 > bp) bp = b3;
    return (size_t)K * bf16_pair_words(CRS) + (size_t)CRS * bf16_pair_words(K) + (size_t)CRS * bf16_pair_words(PQ) +
           bp;
}

/* PAD: the direct kernels' zero-padded input copies (forward, dw's images, and dy for dx). */
static size_t pad_floats(const ConvShape *s) {
    size_t a = 0, b = 0;
    if (conv2d_direct_ok(s->H, s->W, s->R, s->S, s->stride, s->pad, s->C * s->R * s->S))
        a = conv2d_direct_pad_floats(s->C, s->H, s->W, s->pad) * dw_group(s);
    if (conv2d_direct_dx_ok(s->H, s->W, s->R, s->S, s->stride, s->pad, s->K * s->R * s->S))
        b = conv2d_direct_pad_floats(s->K, s->P, s->Q, s->R - 1 - s->pad);
    return a > b ? a : b;
}

static size_t phase_floats(const ConvShape *s) {
    return conv2d_phase_ok(s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad)
               ? conv2d_phase_floats(s->C, s->H, s->W, s->K, s->R, s->S, s->pad)
               : 0;
}

static size_t kvec_floats(const ConvShape *s) {
    const int C = s->C, H = s->H, W = s->W, K = s->K, R = s->R, S = s->S, stride = s->stride, pad = s->pad;
    return conv2d_kvec_dw_ok(C, H, W, K, R, S, stride, pad) || conv2d_kvec_ok(C, H, W, K, R, S, stride, pad, 1)
               ? conv2d_kvec_floats(C, H, W, K, R, S, stride, pad)
               : 0;
}

/* WINO: room for the forward and for dx (dy convolved with the turned filters). */
static size_t wino_floats(const ConvShape *s) {
    const int C = s->C, H = s->H, W = s->W, K = s->K, R = s->R, S = s->S, stride = s->stride, pad = s->pad;
    size_t f = 0, d = 0;
    if (conv2d_wino_ok(C, H, W, K, R, S, stride, pad)) f = conv2d_wino_floats(C, H, W, K, pad);
    if (s->P > 0 && s->Q > 0 && conv2d_wino_ok(K, s->P, s->Q, C, R, S, stride, R - 1 - pad))
        d = conv2d_wino_floats(K, s->P, s->Q, C, R - 1 - pad);
    if (conv2d_wino_dw_ok(C, H, W, K, R, S, stride, pad)) {
        const size_t w = conv2d_wino_dw_floats(C, H, W, K, pad);
        if (w > d) d = w;
    }
    return f > d ? f : d;
}

static size_t wino4_floats(const ConvShape *s) {
    const int C = s->C, H = s->H, W = s->W, K = s->K, R = s->R, S = s->S, stride = s->stride, pad = s->pad;
    if (conv2d_wino4_ok(C, H, W, K, R, S, stride, pad)) return conv2d_wino4_floats(C, H, W, K, pad);
    return conv2d_wino5_ok(C, H, W, K, R, S, stride, pad) ? conv2d_wino5_floats(C, H, W, K, pad) : 0;
}

static size_t ilv_floats(const ConvShape *s) {
    return conv2d_ilv_ok(s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad)
               ? conv2d_ilv_floats(s->C, s->H, s->W, s->K, s->R, s->S, s->pad)
               : 0;
}

/* The areas in slice order (one table: adding a path is one line here and
 * one in the enum). */
static size_t (*const area_floats[AREA_END])(const ConvShape *) = {
    [AREA_COL] = col_floats,     [AREA_PACKED] = packed_floats, [AREA_BF16] = bf16_floats,
    [AREA_PAD] = pad_floats,     [AREA_PHASE] = phase_floats,   [AREA_KVEC] = kvec_floats,
    [AREA_WINO] = wino_floats,   [AREA_WINO4] = wino4_floats,   [AREA_ILV] = ilv_floats,
};

ConvLayout conv_layout(const ConvShape *s) {
    ConvLayout l;
    l.at[0] = 0;
    for (int a = 0; a < AREA_END; a++) l.at[a + 1] = l.at[a] + area_floats[a](s);
    if (conv_pointwise(s)) l.at[AREA_END] = 1; /* no scratch: x is the col matrix */
    return l;
}

Bf16Scratch conv_bf16_scratch(float *slice, const ConvLayout *l, const ConvShape *s, int PQ) {
    const int CRS = s->C * s->R * s->S;
    Bf16Scratch b;
    b.w = (uint32_t *)conv_area(slice, l, AREA_BF16);
    b.wt = b.w + (size_t)s->K * bf16_pair_words(CRS);
    b.col = b.wt + (size_t)CRS * bf16_pair_words(s->K);
    b.pack = b.col + (size_t)CRS * bf16_pair_words(PQ);
    return b;
}

size_t conv2d_workspace_floats(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    const ConvShape s = conv_shape(C, H, W, K, R, S, stride, pad);
    return conv_layout(&s).at[AREA_END];
}

size_t conv2d_pool_buf_floats(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    const int P = conv_out_size(H, R, stride, pad), Q = conv_out_size(W, S, stride, pad);
    int g = conv2d_kvec_group(C, H, W, K, R, S, stride, pad); /* the most images one kernel call writes */
    if (conv2d_wino_ok(C, H, W, K, R, S, stride, pad) && conv2d_wino_group(C, H, W, pad) > g)
        g = conv2d_wino_group(C, H, W, pad);
    if (conv2d_wino4_ok(C, H, W, K, R, S, stride, pad) && conv2d_wino4_group(C, H, W, pad) > g)
        g = conv2d_wino4_group(C, H, W, pad);
    if (conv2d_wino5_ok(C, H, W, K, R, S, stride, pad) && conv2d_wino5_group(C, H, W, pad) > g)
        g = conv2d_wino5_group(C, H, W, pad);
    return (size_t)(g > 1 ? g : 1) * K * P * Q;
}

/* ---- which kernels take a layer -------------------------------------------- */

/* The output-channel kernels (conv2d/kvec.c) for its forward, dx and dw?
 * In bf16 runs on bf16 pair words. DIGITS_CONV=nokvec turns them off. */
static int kvec_layer(const ConvShape *s) {
    return !conv_path_disabled("nokvec") &&
           conv2d_kvec_ok(s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad, use_bf16);
}
/* ... for its weight gradient (in bf16 runs, the layers whose forward
 * takes them: 64->64 3x3 at 14x14 287 vs 202 GFLOP/s for the bf16
 * product on one core; 32->64 stays on the product, 90 % of peak)? */
static int kvec_dw_layer(const ConvShape *s) {
    const int C = s->C, H = s->H, W = s->W, K = s->K, R = s->R, S = s->S, stride = s->stride, pad = s->pad;
    return !conv_path_disabled("nokvec") && conv2d_kvec_dw_ok(C, H, W, K, R, S, stride, pad) &&
           !(use_bf16 && bf16_layer(s) && !conv2d_kvec_ok(C, H, W, K, R, S, stride, pad, 1));
}

/* Does this layer's forward (wino_layer) or dx (wino_dx_layer) run as
 * Winograd F(2x2,3x3) (conv2d/wino.c)? In fp32, and in bf16 runs with a
 * bf16 product (even channel counts): there it beats the other bf16 paths
 * (one core, batch 64: kaggle-deep's 32->32 at 28x28 2.7 ms forward
 * against 5.7 for the bf16 GEMM; 64->64 at 14x14 1.6 against 3.2 for the
 * bf16 kvec kernels, forward and dx). The weight gradient stays fp32.
 * DIGITS_CONV=nowino turns it off. */
static int wino_layer(const ConvShape *s) {
    return !conv_path_disabled("nowino") && conv2d_wino_ok(s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad);
}
static int wino_dw_layer(const ConvShape *s) {
    return !conv_path_disabled("nowino") &&
           conv2d_wino_dw_ok(s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad);
}
static int wino_dx_layer(const ConvShape *s) {
    return !conv_path_disabled("nowino") && s->P > 0 && s->Q > 0 &&
           conv2d_wino_ok(s->K, s->P, s->Q, s->C, s->R, s->S, s->stride, s->R - 1 - s->pad);
}

/* Does an inference (packed weights) batch call of this layer run as
 * Winograd F(4x4,3x3) (conv2d/wino4.c)? fp32, where each thread's chunk
 * fills a tile vector's images (fewer: F(2x2), whose one-image layout fills
 * its lanes; one image also keeps its split). Measured faster than F(2x2),
 * or than kvec where F(2x2) does not fit (odd outputs), on every zoo shape
 * (one core, in-cache batches: 32->32 at 28x28 1.3-1.4x, 32->64 and
 * 64->64 at 14x14 1.7-2x, 64->64 at 11x11 1.7x, 128->128 at 7x7 1.46x).
 * DIGITS_WINO=f2 turns it off (A/B). A 5x5 stride-1 layer runs as
 * F(2x2,5x5) (conv2d/wino5.c) in the same area, one image too (its lanes
 * fill with one image's rows); DIGITS_CONV=nowino5 turns that off. */
static int wino4_layer(const ConvShape *s, int N, int nthreads) {
    static int off = -1; /* read once */
    if (off < 0) {
        const char *v = getenv("DIGITS_WINO");
        off = v && strcmp(v, "f2") == 0;
    }
    const int C = s->C, H = s->H, W = s->W, K = s->K, R = s->R, S = s->S, stride = s->stride, pad = s->pad;
    if (off || conv_path_disabled("nowino") || use_bf16) return 0;
    if (conv2d_wino5_ok(C, H, W, K, R, S, stride, pad)) return !conv_path_disabled("nowino5");
    return conv2d_wino4_ok(C, H, W, K, R, S, stride, pad) &&
           N / conv_chunks(N, nthreads) >= conv2d_wino4_images(H, W, pad);
}

/* Does an inference (packed weights) batch call of this layer run with the
 * images in the vector lanes (conv2d/ilv.c)? fp32, a shape the kernel
 * takes, no zero padding after it, and a full group of images per thread.
 * DIGITS_CONV=noilv turns it off (A/B). */
static int ilv_layer(const ConvShape *s, int N, int nthreads, const Epilogue *ep) {
    return !conv_path_disabled("noilv") && !use_bf16 && !(ep && ep->padded) &&
           conv2d_ilv_ok(s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad) &&
           N / conv_chunks(N, nthreads) >= conv2d_ilv_images();
}

/* ---- one image on several threads (inference) ------------------------------
 * A one-image call has one batch chunk, so one thread. With packed weights
 * (an inference model) a large enough layer instead cuts its output
 * channels into one block per thread, each block a convolution of its own
 * (weights, bias and epilogue rows k0.., output planes k0..) on its own
 * workspace slice, where its packed weights stay. Blocks are multiples of
 * SPLIT_ALIGN channels (the Winograd and kvec kernels' vector widths), and
 * a block's workspace must fit the layer's slice. The blocks go to helper
 * threads that the caller never waits for unless they took a block
 * (core/blocks.h: an OpenMP region waited for a descheduled thread once
 * per layer on a busy machine). Below SPLIT_MIN_MACS handing a block over
 * (~1-2 us) costs more than the second core saves.
 * DIGITS_CONV=nosplit keeps a one-image inference call on one thread. */
#define SPLIT_ALIGN 16
#define SPLIT_MIN_MACS (1L << 19)

static long macs(const ConvShape *s) { return (long)s->K * s->C * s->R * s->S * s->P * s->Q; }

static int channel_blocks(const ConvShape *s, int N, int nthreads) {
    if (N != 1 || nthreads < 2 || conv_path_disabled("nosplit")) return 1;
    if (macs(s) < SPLIT_MIN_MACS) return 1;
    int ns = dg_blocks_width(nthreads); /* 1 while sharing loses (a busy machine) */
    while (ns > 1 && s->K % (ns * SPLIT_ALIGN)) ns--;
    if (ns > 1) {
        ConvShape b = *s;
        b.K = s->K / ns;
        if (conv_layout(&b).at[AREA_END] > conv_layout(s).at[AREA_END]) return 1;
    }
    return ns;
}

/* Cutting a one-image F(2x2) layer by output channels makes every block
 * copy and transform the whole input, and the next layer reads what the
 * other core wrote. Cut by tile rows instead (2 output rows each), a block
 * transforms only the input rows it needs and computes every channel of
 * its rows; its epilogue's steps, 2x2 max pooling or zero padding run on
 * those rows too, so the next layer's rows stay in the same core's cache.
 * DIGITS_CONV=norows turns it off (channel blocks). 0 or ns >= 2 blocks. */
static int rows_blocks(const ConvShape *s, int N, int nthreads, const Epilogue *ep) {
    if (N != 1 || nthreads < 2 || conv_path_disabled("nosplit") || conv_path_disabled("norows")) return 0;
    if (!wino_layer(s)) return 0;
    if (ep && ep->pool && (ep->pool != 2 || ep->pool_stride != 2 || ep->pool_avg)) return 0;
    if (macs(s) < SPLIT_MIN_MACS) return 0;
    int ns = dg_blocks_width(nthreads);
    const int TH = conv2d_wino_tile_rows(s->H, s->pad);
    if (ns > TH / 2) ns = TH / 2; /* two tile rows a block at least */
    return ns >= 2 ? ns : 0;
}

/* The output-channel kernels cut by output rows: 0, or ns >= 2 where the
 * channel split cannot keep those kernels (kaggle-deep's 32->32 5x5/2
 * layer: 16-channel blocks are narrower than their 32- and 64-channel
 * register blocks, so the layer ran on one core). Each block reads all
 * the weights (100 KB there) and its rows of the input. fp32; no pooling
 * epilogue. */
static int kvec_rows_blocks(const ConvShape *s, int N, int nthreads, const Epilogue *ep) {
    if (N != 1 || nthreads < 2 || use_bf16 || conv_path_disabled("nosplit") || conv_path_disabled("norows") ||
        (ep && ep->pool))
        return 0;
    if (wino_layer(s) || wino4_layer(s, N, nthreads) || conv_pointwise(s) ||
        conv2d_direct_ok(s->H, s->W, s->R, s->S, s->stride, s->pad, s->C * s->R * s->S) || !kvec_layer(s))
        return 0;
    if (macs(s) < SPLIT_MIN_MACS) return 0;
    int ns = dg_blocks_width(nthreads);
    if (ns > s->P) ns = s->P;
    if (ns < 2 ||
        (s->K % ns == 0 && conv2d_kvec_ok(s->C, s->H, s->W, s->K / ns, s->R, s->S, s->stride, s->pad, 0)))
        return 0;
    return ns;
}

/* Does the kernel cover the whole unpadded input (one output pixel, e.g.
 * lenet5's 4x4 -> 1x1), with no pooling or padding epilogue? Then a
 * one-image call is the matrix-vector product of a linear layer, whose
 * (K, C*R*S) weights are the conv's as stored: linear_forward_ep, 8 rows
 * at a time (as im2col + sgemm with one column it ran at 2-3 GFLOP/s); an
 * inference batch is the linear layer's one sgemm on x as it lies, (N,
 * C*H*W), with no im2col copy. */
static int whole_input(const ConvShape *s, const Epilogue *ep) {
    return s->R == s->H && s->S == s->W && s->pad == 0 && !(ep && (ep->pool || ep->padded));
}

/* An inference call's cut (CUT_NONE: the batch chunks). */
static ConvCut forward_cut(const ConvShape *s, int N, int nthreads, const Epilogue *ep, int *blocks) {
    if (whole_input(s, ep)) return CUT_LINEAR;
    if ((*blocks = rows_blocks(s, N, nthreads, ep))) return CUT_ROWS;
    if ((*blocks = kvec_rows_blocks(s, N, nthreads, ep))) return CUT_KVEC_ROWS;
    if ((*blocks = channel_blocks(s, N, nthreads)) > 1) return CUT_CHANNELS;
    return CUT_NONE;
}

/* ---- the plans ------------------------------------------------------------- */

/* The batch chunks' path: the first of the list that takes the layer. */
static ConvPath forward_path(const ConvShape *s, int N, int nthreads, const Epilogue *ep, int packed, int group) {
    const int CRS = s->C * s->R * s->S;
    if (packed && ilv_layer(s, N, nthreads, ep)) return PATH_ILV;
    if (packed && wino4_layer(s, N, nthreads)) return PATH_WINO4;
    if (wino_layer(s)) return PATH_WINO; /* 3x3 stride 1 */
    /* bf16 runs keep deep one-vector-row layers (14x14) on the bf16
     * product: as fast as the fp32 direct kernel there (78 vs 76 %), and bf16 */
    if (!conv_pointwise(s) && conv2d_direct_ok(s->H, s->W, s->R, s->S, s->stride, s->pad, CRS) &&
        !(use_bf16 && bf16_layer(s) && !conv2d_direct_shallow(CRS) && s->Q <= 16)) {
        /* inference with one input channel: conv2d/c1.c (reads w as it is) */
        if (packed && conv2d_c1_ok(s->C, s->H, s->W, s->R, s->S, s->stride, s->pad) && conv2d_c1_steps_ok(ep))
            return PATH_C1;
        return PATH_DIRECT;
    }
    /* deep layers with small outputs: vectorised over output channels */
    if (!conv_pointwise(s) && kvec_layer(s)) return PATH_KVEC;
    /* stride 2 on the phases: faster than bf16 products too (a 5x5/2 layer
     * at 28x28: 110 vs 93 GFLOP/s; conv2d_backward keeps bf16 there) */
    if (group == 1 && conv2d_phase_ok(s->C, s->H, s->W, s->K, s->R, s->S, s->stride, s->pad)) return PATH_PHASE;
    /* a one-image call (serving) stays fp32: rounding the weights to bf16
     * costs as much as the bf16 product saves (lenet5's 4x4 -> 1x1 layer:
     * K x CRS conversions for K x CRS products) */
    if (use_bf16 && N > 1 && bf16_layer(s)) return PATH_BF16;
    return group > 1 ? PATH_GROUPED : PATH_IM2COL;
}

ConvForwardPlan conv_plan_forward(const ConvShape *s, int N, int nthreads, const Epilogue *ep, int packed) {
    ConvForwardPlan p = {0};
    p.cut = packed ? forward_cut(s, N, nthreads, ep, &p.blocks) : CUT_NONE;
    if (p.cut != CUT_NONE) return p;
    p.nt = conv_chunks(N, nthreads);
    p.band = conv_band_rows(s);
    p.group = conv_group_images(s);
    p.path = forward_path(s, N, nthreads, ep, packed, p.group);
    p.gather = (p.path == PATH_BF16 || p.path == PATH_GROUPED || p.path == PATH_IM2COL) && !conv_pointwise(s) &&
               p.band == s->P && conv_use_gather(s);
    p.packs = p.path == PATH_WINO || p.path == PATH_WINO4 || p.path == PATH_DIRECT || p.path == PATH_PHASE ||
              p.path == PATH_KVEC;
    return p;
}

ConvBackwardPlan conv_plan_backward(const ConvShape *s, int N, int nthreads, int want_x, int want_w, int want_b) {
    const int C = s->C, H = s->H, W = s->W, K = s->K, R = s->R, S = s->S, stride = s->stride, pad = s->pad;
    const int CRS = C * R * S;
    ConvBackwardPlan b = {0};
    b.nt = conv_chunks(N, nthreads);
    b.pointwise = conv_pointwise(s);
    b.band = conv_band_rows(s);
    b.group = conv_group_images(s);
    b.dwg = dw_group(s);
    b.want_x = want_x, b.want_w = want_w, b.want_b = want_b;
    const int bf16_ok = use_bf16 && bf16_layer(s);
    /* deep layers in bf16 runs: the bf16 products (dx 87 %, dw 71 % of the
     * fp32 peak at 28x28) beat the fp32 direct kernels (79 %, 63 %) */
    b.direct_w = !b.pointwise && conv2d_direct_dw_ok(H, W, R, S, stride, pad, CRS) &&
                 !(bf16_ok && !conv2d_direct_shallow(CRS));
    b.direct_x = !b.pointwise && conv2d_direct_dx_ok(H, W, R, S, stride, pad, K * R * S) &&
                 !(bf16_ok && !conv2d_direct_shallow(K * R * S));
    /* stride 2 on the phases (conv2d/phase.c); with bf16 the products win
     * the weight gradient (101 vs 77 GFLOP/s) and tie on dx */
    b.phase_x = !bf16_ok && !kvec_layer(s) && b.group == 1 && conv2d_phase_ok(C, H, W, K, R, S, stride, pad);
    /* 3x3 stride 1: dw by Winograd (db on the paths below) */
    b.wino_w = want_w && wino_dw_layer(s);
    b.kvec_w = !b.pointwise && !b.wino_w && kvec_dw_layer(s); /* dw and db */
    /* (bf16 runs: a 3x3 layer's dx on the bf16 Winograd product rather
     * than kvec: 64->64 at 14x14, one core, 1.8 vs 3.2 ms) */
    b.kvec_x = !b.pointwise && kvec_layer(s) && conv2d_kvec_dx_ok(C, H, W, K, R, S, stride, pad, use_bf16) &&
               !(use_bf16 && conv2d_wino_bf16_ok(K) && wino_dx_layer(s));
    /* 3x3 stride 1: dx as the Winograd forward of dy with turned filters */
    b.wino_x = want_x && !b.kvec_x && wino_dx_layer(s);
    /* dw partials transposed if bf16_w */
    b.bf16_w = bf16_ok && !b.direct_w && !b.kvec_w && !b.wino_w;
    b.bf16_x = bf16_ok && !b.direct_x && !b.kvec_x;
    b.rest_w = want_w && !b.kvec_w && !b.wino_w;
    b.rest_b = want_b && !b.kvec_w;
    b.rest_x = want_x && !b.kvec_x && !b.wino_x;
    b.gather = !b.pointwise && (b.rest_w || b.rest_x) && b.band == s->P && conv_use_gather(s);
    return b;
}
