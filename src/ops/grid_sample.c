/* grid_sample.c — the two halves of a spatial transformer (Jaderberg et
 * al. 2015), with PyTorch's semantics (F.affine_grid and F.grid_sample,
 * mode bilinear, padding_mode zeros; align_corners False or True):
 *
 *   affine_grid   theta (N,2,3) -> grid (N,P,Q,2): for output pixel (p,q)
 *                 at normalised centre (x_q, y_p) = ((2q+1)/Q-1, (2p+1)/P-1),
 *                 grid = theta . (x_q, y_p, 1)  — where to sample, in [-1,1]
 *                 units of the input (-1 = left edge of pixel 0).
 *   grid_sample   x (N,C,H,W), grid -> y (N,C,P,Q): bilinear interpolation at
 *                 ix = ((gx+1)*W-1)/2, iy = ((gy+1)*H-1)/2; neighbours outside
 *                 the image count as 0.
 *   align_corners=True (the `align` argument): -1 and 1 are the centres of
 *                 the corner pixels instead of their outer edges, so the
 *                 base grid is x_q = -1 + 2q/(Q-1) (0 when Q = 1) and
 *                 ix = (gx+1)*(W-1)/2, iy = (gy+1)*(H-1)/2.
 *
 * Backward passes go to both inputs: the image (a scatter of dy with the
 * same bilinear weights) and the grid (the slope of the bilinear surface
 * times W/2, H/2), then from the grid to theta (a sum of outer products).
 * The loops mirror ATen's grid_sampler_2d_cpu so a reader can compare.
 *
 * Samples are independent, so every loop runs OpenMP over the batch; each
 * sample is computed by one thread in a fixed order, so results do not
 * depend on the thread count.
 * Left out: border/reflection padding, nearest and
 * bicubic modes, 3-D (volumetric) grids.
 */
#include "ops/ops.h"

#include <math.h>
#include <string.h>

/* Below this many output values per call the threads cost more than they save. */
#define GS_PAR_MIN (1 << 14)

/* ==== affine_grid ========================================================= */

/* Normalised coordinate of pixel i of n along one axis: its centre,
 * (2i+1)/n - 1, or with align_corners -1 + 2i/(n-1) (torch.linspace). */
static inline float base_coord(int i, int n, int align) {
    if (align) return n > 1 ? -1.0f + (float)i * (2.0f / (float)(n - 1)) : 0.0f;
    return (float)(2 * i + 1) / (float)n - 1.0f;
}

/* grid[n,p,q,:] = theta[n] (2x3) . (x_q, y_p, 1)   theta (N,2,3)  grid (N,P,Q,2) */
void affine_grid_forward(float *grid, const float *theta, int N, int P, int Q, int align) {
    for (int n = 0; n < N; n++) {
        const float *t = theta + (size_t)n * 6;
        float *g = grid + (size_t)n * P * Q * 2;
        for (int p = 0; p < P; p++) {
            const float yp = base_coord(p, P, align);
            for (int q = 0; q < Q; q++) {
                const float xq = base_coord(q, Q, align);
                g[((size_t)p * Q + q) * 2 + 0] = t[0] * xq + t[1] * yp + t[2];
                g[((size_t)p * Q + q) * 2 + 1] = t[3] * xq + t[4] * yp + t[5];
            }
        }
    }
}

/* dtheta[n] += sum_{p,q} dgrid[n,p,q,:] (x) (x_q, y_p, 1)   (ADDS into dtheta) */
void affine_grid_backward(float *dtheta, const float *dgrid, int N, int P, int Q, int align) {
    for (int n = 0; n < N; n++) {
        const float *g = dgrid + (size_t)n * P * Q * 2;
        double acc[6] = {0};
        for (int p = 0; p < P; p++) {
            const double yp = base_coord(p, P, align);
            for (int q = 0; q < Q; q++) {
                const double xq = base_coord(q, Q, align);
                const double gx = g[((size_t)p * Q + q) * 2], gy = g[((size_t)p * Q + q) * 2 + 1];
                acc[0] += gx * xq, acc[1] += gx * yp, acc[2] += gx;
                acc[3] += gy * xq, acc[4] += gy * yp, acc[5] += gy;
            }
        }
        for (int k = 0; k < 6; k++) dtheta[(size_t)n * 6 + k] += (float)acc[k];
    }
}

/* ==== grid_sample ========================================================= */

static inline int inside(int x, int y, int H, int W) { return x >= 0 && x < W && y >= 0 && y < H; }

/* The four neighbours of (ix, iy), their bilinear weights, and which of
 * them lie inside the image (the others read as 0). */
typedef struct {
    int x0, y0;             /* north-west corner: floor(ix), floor(iy) */
    float nw, ne, sw, se;   /* weights; ne is (x0+1, y0), sw is (x0, y0+1) */
    float fx, fy;           /* ix - x0, iy - y0 */
    int in_nw, in_ne, in_sw, in_se;
} Bilinear;

static inline Bilinear bilinear_at(float gx, float gy, int H, int W, int align) {
    Bilinear b;
    const float ix = align ? (gx + 1.0f) * 0.5f * (float)(W - 1) : ((gx + 1.0f) * (float)W - 1.0f) * 0.5f;
    const float iy = align ? (gy + 1.0f) * 0.5f * (float)(H - 1) : ((gy + 1.0f) * (float)H - 1.0f) * 0.5f;
    const float fx0 = floorf(ix), fy0 = floorf(iy);
    b.x0 = (int)fx0;
    b.y0 = (int)fy0;
    b.fx = ix - fx0;
    b.fy = iy - fy0;
    b.nw = (1.0f - b.fx) * (1.0f - b.fy);
    b.ne = b.fx * (1.0f - b.fy);
    b.sw = (1.0f - b.fx) * b.fy;
    b.se = b.fx * b.fy;
    b.in_nw = inside(b.x0, b.y0, H, W), b.in_ne = inside(b.x0 + 1, b.y0, H, W);
    b.in_sw = inside(b.x0, b.y0 + 1, H, W), b.in_se = inside(b.x0 + 1, b.y0 + 1, H, W);
    return b;
}

/* y[n,c,p,q] = bilinear(x[n,c], grid[n,p,q])   x (N,C,H,W) grid (N,P,Q,2) y (N,C,P,Q) */
void grid_sample_forward(float *y, const float *x, const float *grid, int N, int C, int H, int W,
                         int P, int Q, int align) {
    const size_t PQ = (size_t)P * Q, HW = (size_t)H * W;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((size_t)N * C * PQ >= GS_PAR_MIN)
#endif
    for (int n = 0; n < N; n++) {
        const float *g = grid + (size_t)n * PQ * 2;
        for (size_t i = 0; i < PQ; i++) {
            Bilinear b = bilinear_at(g[2 * i], g[2 * i + 1], H, W, align);
            const int x1 = b.x0 + 1, y1 = b.y0 + 1;
            for (int c = 0; c < C; c++) {
                const float *xc = x + ((size_t)n * C + c) * HW;
                float v = 0.0f;
                if (b.in_nw) v += xc[(size_t)b.y0 * W + b.x0] * b.nw;
                if (b.in_ne) v += xc[(size_t)b.y0 * W + x1] * b.ne;
                if (b.in_sw) v += xc[(size_t)y1 * W + b.x0] * b.sw;
                if (b.in_se) v += xc[(size_t)y1 * W + x1] * b.se;
                y[((size_t)n * C + c) * PQ + i] = v;
            }
        }
    }
}

/* dx[n,c,h,w] = sum over outputs sampling (h,w) of dy * weight   (overwritten; NULL skipped)
 * dgrid[n,p,q] = (W/2 * d y/d ix, H/2 * d y/d iy) . dy summed over c   (overwritten;
 * (W-1)/2 and (H-1)/2 with align) */
void grid_sample_backward(float *dx, float *dgrid, const float *dy, const float *x,
                          const float *grid, int N, int C, int H, int W, int P, int Q, int align) {
    const float sx = (float)(align ? W - 1 : W) * 0.5f, sy = (float)(align ? H - 1 : H) * 0.5f;
    const size_t PQ = (size_t)P * Q, HW = (size_t)H * W;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((size_t)N * C * PQ >= GS_PAR_MIN)
#endif
    for (int n = 0; n < N; n++) {
        const float *g = grid + (size_t)n * PQ * 2;
        float *dxn = dx ? dx + (size_t)n * C * HW : NULL;
        if (dxn) memset(dxn, 0, (size_t)C * HW * sizeof(float));
        for (size_t i = 0; i < PQ; i++) {
            Bilinear b = bilinear_at(g[2 * i], g[2 * i + 1], H, W, align);
            const int x1 = b.x0 + 1, y1 = b.y0 + 1;
            float gix = 0.0f, giy = 0.0f;
            for (int c = 0; c < C; c++) {
                const float go = dy[((size_t)n * C + c) * PQ + i];
                const float *xc = x + ((size_t)n * C + c) * HW;
                float *dxc = dxn ? dxn + (size_t)c * HW : NULL;
                /* value of each corner (0 outside), its weight's slopes:
                 * d nw/d ix = -(1-fy), d nw/d iy = -(1-fx), and so on */
                if (b.in_nw) {
                    const float v = xc[(size_t)b.y0 * W + b.x0];
                    gix -= v * (1.0f - b.fy) * go;
                    giy -= v * (1.0f - b.fx) * go;
                    if (dxc) dxc[(size_t)b.y0 * W + b.x0] += b.nw * go;
                }
                if (b.in_ne) {
                    const float v = xc[(size_t)b.y0 * W + x1];
                    gix += v * (1.0f - b.fy) * go;
                    giy -= v * b.fx * go;
                    if (dxc) dxc[(size_t)b.y0 * W + x1] += b.ne * go;
                }
                if (b.in_sw) {
                    const float v = xc[(size_t)y1 * W + b.x0];
                    gix -= v * b.fy * go;
                    giy += v * (1.0f - b.fx) * go;
                    if (dxc) dxc[(size_t)y1 * W + b.x0] += b.sw * go;
                }
                if (b.in_se) {
                    const float v = xc[(size_t)y1 * W + x1];
                    gix += v * b.fy * go;
                    giy += v * b.fx * go;
                    if (dxc) dxc[(size_t)y1 * W + x1] += b.se * go;
                }
            }
            /* d ix / d gx = W/2, d iy / d gy = H/2 ((W-1)/2, (H-1)/2 with align) */
            dgrid[((size_t)n * PQ + i) * 2 + 0] = gix * sx;
            dgrid[((size_t)n * PQ + i) * 2 + 1] = giy * sy;
        }
    }
}
