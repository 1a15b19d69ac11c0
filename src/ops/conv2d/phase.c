/* conv2d/phase.c — stride-2 convolution (kaggle-deep's 5x5/2 layers) as a
 * stride-1 convolution on the input's four phases, so that the direct
 * AVX-512 kernels (conv2d/direct.c) run it.
 *
 * Why: im2col for a stride-2 5x5 layer copies 25 strided taps per output
 * for a GEMM of only P*Q columns; kaggle-deep's 32->32 5x5/2 layer (28x28
 * -> 14x14) ran at about a third of peak and took 17 % of a training step.
 *
 * How: split the zero-padded input (Hp x Wp) into its four phases
 *     X[py,px][c][i][j] = xpad[c][2i+py][2j+px]      (Hh = ceil(Hp/2) rows)
 * and the kernel the same way into four sub-kernels of at most Rh x Sh
 * taps (Rh = ceil(R/2), zero where 2a+py >= R):
 *     W'[k][(py,px),c][a][b] = w[k][c][2a+py][2b+px]
 * Then y = conv_stride1(X (4C channels, Hh x Wh), W' (K, 4C, Rh, Sh), no
 * padding): an ordinary deep stride-1 layer. The zero taps cost 36/25 of
 * the FLOPs for a 5x5 kernel, which the kernels' higher rate more than
 * pays back. The input gradient is that layer's dx (the direct kernel with
 * flipped, transposed W' on dy padded by Rh-1), gathered back from the
 * phases. The weight gradient is the phase layer's (the direct dw kernel
 * on the phase image, summed over a chunk's images), folded back onto the
 * R x S taps at the end of the chunk.
 */
#include "ops/conv2d/phase.h"

#include <string.h>

#include "ops/conv2d/direct.h"

typedef struct {
    int Hh, Wh;  /* phase image */
    int Rh, Sh;  /* sub-kernel */
    int C4;      /* phase channels: 4*C */
    int P, Q;    /* output */
} Phase;

static Phase phase_of(int C, int H, int W, int R, int S, int pad) {
    Phase g;
    g.Hh = (H + 2 * pad + 1) / 2, g.Wh = (W + 2 * pad + 1) / 2;
    g.Rh = (R + 1) / 2, g.Sh = (S + 1) / 2;
    g.C4 = 4 * C;
    g.P = (H + 2 * pad - R) / 2 + 1, g.Q = (W + 2 * pad - S) / 2 + 1;
    return g;
}

int conv2d_phase_ok(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    if (stride != 2 || R < 3 || S < 3 || R % 2 == 0 || S % 2 == 0 || R != S) return 0;
    const Phase g = phase_of(C, H, W, R, S, pad);
    /* odd kernels: the phase convolution's output is exactly P x Q */
    if (g.P <= 0 || g.Hh - g.Rh + 1 != g.P || g.Wh - g.Sh + 1 != g.Q) return 0;
    const int depth_f = g.C4 * g.Rh * g.Sh, depth_x = K * g.Rh * g.Sh;
    /* forward: the padded-input kernel (deep reductions); dx: either */
    return conv2d_direct_ok(g.Hh, g.Wh, g.Rh, g.Sh, 1, 0, depth_f) &&
           conv2d_direct_dx_ok(g.Hh, g.Wh, g.Rh, g.Sh, 1, 0, depth_x) && !conv2d_direct_shallow(depth_f);
}

/* The weight gradient takes this many images per kernel call (see
 * DW_GROUP in conv2d/forward.c: one lane reduction per block for all of them). */
#define PHASE_DW_GROUP 4

int conv2d_phase_dw_group(void) { return PHASE_DW_GROUP; }

/* One phase image's floats: 4C x Hh x Wh plus the zeroed slack the direct
 * kernels may read past the last row (as their own padded copies). */
static size_t image_floats(const Phase *g) { return conv2d_direct_pad_floats(g->C4, g->Hh, g->Wh, 0); }

/* The scratch, in order: W' (K,4C,Rh,Sh), packed weights (forward or dx),
 * PHASE_DW_GROUP phase images (the forward's input, dx's output, dw's
 * inputs), the direct kernel's padded dy, and the phase layer's weight
 * gradient (K,4C,Rh,Sh). */
typedef struct {
    float *wsub, *packed, *image, *padded, *dwsub;
} PhaseScratch;

/* Offsets of the scratch parts in floats; [5] is the total. */
static void scratch_offsets(size_t off[6], int K, const Phase *g) {
    size_t pf = conv2d_direct_packed_floats(K, g->C4, g->Rh, g->Sh);
    size_t px = conv2d_direct_packed_floats(g->C4, K, g->Rh, g->Sh);
    off[0] = 0;
    off[1] = off[0] + (size_t)K * g->C4 * g->Rh * g->Sh;
    off[2] = off[1] + (pf > px ? pf : px);
    off[3] = off[2] + PHASE_DW_GROUP * image_floats(g);
    off[4] = off[3] + conv2d_direct_pad_floats(K, g->P, g->Q, g->Rh - 1);
    off[5] = off[4] + (size_t)K * g->C4 * g->Rh * g->Sh;
}

static PhaseScratch carve(float *ws, int K, const Phase *g) {
    size_t off[6];
    scratch_offsets(off, K, g);
    return (PhaseScratch){ws + off[0], ws + off[1], ws + off[2], ws + off[3], ws + off[4]};
}

size_t conv2d_phase_floats(int C, int H, int W, int K, int R, int S, int pad) {
    const Phase g = phase_of(C, H, W, R, S, pad);
    size_t off[6];
    scratch_offsets(off, K, &g);
    return off[5];
}

/* Between the kernel (K,C,R,S) and the phase layer's (K,4C,Rh,Sh):
 * to_sub = 1: sub = W' (the zero taps 0); to_sub = 0: full += sub on the
 * real taps (the zero taps' gradients are dropped). */
static void map_taps(float *sub, float *full, int to_sub, int C, int K, int R, int S, const Phase *g) {
    for (int k = 0; k < K; k++)
        for (int ph = 0; ph < 4; ph++)
            for (int c = 0; c < C; c++)
                for (int a = 0; a < g->Rh; a++)
                    for (int b = 0; b < g->Sh; b++) {
                        const int r = 2 * a + ph / 2, t = 2 * b + ph % 2, real = r < R && t < S;
                        float *sv = sub + (((size_t)k * g->C4 + ph * C + c) * g->Rh + a) * g->Sh + b;
                        float *fv = real ? full + (((size_t)k * C + c) * R + r) * S + t : NULL;
                        if (to_sub) *sv = real ? *fv : 0.0f;
                        else if (real) *fv += *sv;
                    }
}

void conv2d_phase_pack(float *ws, const float *w, int C, int H, int W, int K, int R, int S, int pad, int dx) {
    const Phase g = phase_of(C, H, W, R, S, pad);
    PhaseScratch s = carve(ws, K, &g);
    map_taps(s.wsub, (float *)w, 1, C, K, R, S, &g); /* only read */
    conv2d_direct_pack(s.packed, s.wsub, K, g.C4, g.Rh, g.Sh, dx);
}

/* image[(py,px),c][i][j] = x[c][2i+py-pad][2j+px-pad], 0 outside; then
 * the slack zeroed */
static void split_phases(float *image, const float *x, int C, int H, int W, int pad, const Phase *g) {
    const size_t used = (size_t)g->C4 * g->Hh * g->Wh;
    memset(image + used, 0, sizeof(float) * (image_floats(g) - used));
    for (int ph = 0; ph < 4; ph++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < g->Hh; i++) {
                float *row = image + (((size_t)ph * C + c) * g->Hh + i) * g->Wh;
                const int h = 2 * i + ph / 2 - pad;
                if (h < 0 || h >= H) {
                    memset(row, 0, sizeof(float) * g->Wh);
                    continue;
                }
                const float *xr = x + ((size_t)c * H + h) * W;
                for (int j = 0; j < g->Wh; j++) {
                    const int v = 2 * j + ph % 2 - pad;
                    row[j] = v >= 0 && v < W ? xr[v] : 0.0f;
                }
            }
}

void conv2d_phase_forward(float *y, const float *x, const float *bias, float *ws, int C, int H, int W, int K,
                          int R, int S, int pad) {
    const Phase g = phase_of(C, H, W, R, S, pad);
    PhaseScratch s = carve(ws, K, &g);
    split_phases(s.image, x, C, H, W, pad, &g);
    conv2d_direct_forward_padded(y, s.image, s.packed, bias, g.C4, g.Hh, g.Wh, K, g.Rh, g.Sh);
}

void conv2d_phase_dw_begin(float *ws, int C, int H, int W, int K, int R, int S, int pad) {
    const Phase g = phase_of(C, H, W, R, S, pad);
    PhaseScratch s = carve(ws, K, &g);
    memset(s.dwsub, 0, sizeof(float) * K * g.C4 * g.Rh * g.Sh);
}

void conv2d_phase_dw(const float *dy, const float *x, int G, float *ws, int C, int H, int W, int K, int R, int S,
                     int pad) {
    const Phase g = phase_of(C, H, W, R, S, pad);
    PhaseScratch s = carve(ws, K, &g);
    const size_t img = image_floats(&g);
    for (int n = 0; n < G; n++) split_phases(s.image + n * img, x + (size_t)n * C * H * W, C, H, W, pad, &g);
    conv2d_direct_dw_padded(s.dwsub, dy, s.image, g.C4, g.Hh, g.Wh, K, g.Rh, g.Sh, G, img);
}

void conv2d_phase_dw_end(float *dw, float *ws, int C, int H, int W, int K, int R, int S, int pad) {
    const Phase g = phase_of(C, H, W, R, S, pad);
    PhaseScratch s = carve(ws, K, &g);
    map_taps(s.dwsub, dw, 0, C, K, R, S, &g);
}

void conv2d_phase_dx(float *dx, const float *dy, float *ws, int C, int H, int W, int K, int R, int S, int pad) {
    const Phase g = phase_of(C, H, W, R, S, pad);
    PhaseScratch s = carve(ws, K, &g);
    /* the phase layer's dx: image (4C,Hh,Wh) = conv(dy, flipped W'^T, pad Rh-1) */
    conv2d_direct_forward(s.image, dy, s.packed, NULL, K, g.P, g.Q, g.C4, g.Rh, g.Sh, g.Rh - 1, s.padded);
    /* dx[c][h][v] = image[(py,px),c][i][j] with h+pad = 2i+py, v+pad = 2j+px */
    for (int c = 0; c < C; c++)
        for (int h = 0; h < H; h++) {
            const int hp = h + pad, py = hp % 2, i = hp / 2;
            float *out = dx + ((size_t)c * H + h) * W;
            const float *even = s.image + (((size_t)(2 * py) * C + c) * g.Hh + i) * g.Wh;
            const float *odd = s.image + (((size_t)(2 * py + 1) * C + c) * g.Hh + i) * g.Wh;
            for (int v = 0; v < W; v++) {
                const int vp = v + pad;
                out[v] = (vp % 2 ? odd : even)[vp / 2];
            }
        }
}
