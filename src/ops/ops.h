/* ops.h — the numeric kernels: one forward/backward pair per op.
 *
 * Dimension letters, used in every comment and signature below:
 *   N  batch size            C  input channels      H, W   input height, width
 *   K  output channels       R, S kernel height, width
 *   P, Q output height, width (P = (H + 2*pad - R) / stride + 1)
 *   D  input features (linear)   M  output features (linear)
 * Tensors are float32, row-major, NCHW.
 *
 * Conventions (as in llm.c): outputs first, then inputs, then sizes.
 * Backward functions OVERWRITE the input gradient dx (NULL = not wanted) and
 * ADD INTO parameter gradients (dw, db, ...), so one model_zero_grad clears
 * parameter gradients per step.
 *
 * Ops whose fast version is more than the plain loops (a matrix product,
 * special kernels, vectorised special cases, an approximation) keep a
 * plain `_ref` version beside it, for the tests (tests/test_ops_ref.c
 * checks fast against ref): conv2d forward and backward, linear forward
 * and backward, maxpool forward, avgpool forward and backward, tanh
 * forward, and gemm_bf16 (gemm_bf16.h). Fast versions must match their
 * reference within float rounding (tanh: the approximation's error).
 * The other ops have one version, mostly the plain loops themselves:
 * relu, tanh backward, maxpool backward (the argmax scatter), dropout,
 * softmax and softmax_xent, elu, add, concat, global avgpool, affine_grid
 * and grid_sample; and batchnorm (plain and fused with ReLU; vectorised
 * moments). They are checked against values computed in double in
 * tests/test_ops_ref.c (batchnorm, fused batchnorm, dropout, softmax),
 * against PyTorch inside whole networks (tests/test_torch_parity.c), and
 * every backward by finite differences (tests/test_ops_grad.c).
 */
#ifndef DG_OPS_H
#define DG_OPS_H

#include <stddef.h>
#include <stdint.h>

/* ---- conv2d ------------------------------------------------------------
 * y[n,k,p,q] = b[k] + sum_{c,r,s} w[k,c,r,s] * x[n,c,p*stride+r-pad,q*stride+s-pad]
 * x (N,C,H,W)  w (K,C,R,S)  b (K) or NULL  y (N,K,P,Q)
 * The fast versions need a workspace of conv2d_workspace_floats() floats
 * per thread (nthreads slices, laid out one after another).              */
void conv2d_forward_ref(float *y, const float *x, const float *w, const float *b,
                        int N, int C, int H, int W, int K, int R, int S, int stride, int pad);
void conv2d_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int N, int C, int H, int W, int K, int R, int S,
                         int stride, int pad);
size_t conv2d_workspace_floats(int C, int H, int W, int K, int R, int S, int stride, int pad);
void conv2d_forward(float *y, const float *x, const float *w, const float *b, int N, int C,
                    int H, int W, int K, int R, int S, int stride, int pad, float *workspace,
                    int nthreads);

/* Eval-mode fusion: what follows a conv (or linear) layer — ReLU, batch
 * norm with its running statistics — applied to each image's output right
 * after it is computed, while it is still in cache, instead of as separate
 * passes over the whole batch. Steps run in order, per channel k:
 *   relu:   v = max(v, 0)
 *   tanh:   v = tanh(v)  (tanh_forward's approximation)
 *   affine: v = (v - sub[k]) * mul[k] + add[k]   (exactly batchnorm_forward_eval's formula) */
#define EPILOGUE_MAX_STEPS 4
typedef struct {
    int n;
    struct {
        int relu, tanh; /* neither: the affine step */
        const float *sub, *mul, *add;
    } step[EPILOGUE_MAX_STEPS];
    /* Convolutions only (inference): max pooling pool x pool, stride
     * pool_stride, no padding, after the steps (pool = 0: none), then
     * max(v, 0) when pool_relu; average pooling instead when pool_avg
     * (avgpool_forward's arithmetic, no pool_relu). The conv computes each chunk's full-size
     * output into pool_buf (pool_slice floats per workspace slice / thread,
     * conv2d_pool_buf_floats), and y receives the pooled planes
     * (N,K,(P-pool)/pool_stride+1,(Q-pool)/pool_stride+1). Or, with
     * padded set (no pooling), y receives each plane inside pad[0] top,
     * pad[1] bottom, pad[2] left and pad[3] right rows/columns of zeros
     * (a zeropad layer), also through pool_buf. */
    int pool, pool_stride, pool_relu, pool_avg;
    int padded, pad[4];
    float *pool_buf;
    size_t pool_slice;
} Epilogue;
/* y (N,K,L): add bias (may be NULL), then the steps (ep may be NULL);
 * ignores ep's pooling. */
void epilogue_apply(float *y, int N, int K, int L, const float *bias, const Epilogue *ep);
/* Floats of Epilogue.pool_buf per thread that a conv layer with pooling
 * in its epilogue needs (the most images one kernel call writes). */
size_t conv2d_pool_buf_floats(int C, int H, int W, int K, int R, int S, int stride, int pad);
/* y (K,P',Q') = max pooling F x F stride T of x (K planes of H x W, plane
 * k at x + k*ld), then max(v, 0) when relu: the pooling of a fused
 * epilogue (maxpool_forward's maxima without the argmax). */
void maxpool_planes(float *y, const float *x, size_t ld, int K, int H, int W, int F, int T, int relu);
/* conv2d_forward followed by ep on each image (ep NULL: conv2d_forward). */
void conv2d_forward_ep(float *y, const float *x, const float *w, const float *b, int N, int C,
                       int H, int W, int K, int R, int S, int stride, int pad, float *workspace,
                       int nthreads, const Epilogue *ep);
/* Inference with weights packed once: conv2d_forward_ep on a workspace
 * that belongs to this layer alone, where the paths that rearrange the
 * weights first (Winograd, direct, phase, kvec) keep them between calls.
 * *packed says which workspace slices hold them (slices 0..slices-1,
 * packed under the bf16 setting `bf16`); start it at {0, 0}, and set it
 * back to {0, 0} whenever w changes. The call packs the slices it uses
 * that lack them and records it. One image (N = 1) of a large layer is cut
 * by rows (a 3x3 Winograd layer by tile rows, a kvec layer whose channels
 * do not split into the kernel's blocks by output rows: conv2d/forward.c,
 * forward_rows; packed->rows) or by output channels (conv2d/forward.c,
 * forward_split; its slices then hold the blocks' weights: packed->split)
 * into one block per thread; conv2d/plan.c decides which. Same results
 * as conv2d_forward_ep. */
typedef struct {
    int slices, bf16;
    int split; /* the slices hold the blocks of a one-image split (conv2d/forward.c) */
    int wino4; /* slices holding the F(4x4) Winograd weights (conv2d/forward.c, batch calls) */
    int ilv;   /* slices holding the interleaved kernel's weights (conv2d/ilv.c, batch calls) */
    int rows;  /* blocks of the last one-image call cut by rows (0: not cut so) */
} Conv2dPacked;
void conv2d_forward_packed(float *y, const float *x, const float *w, const float *b, int N, int C, int H, int W,
                           int K, int R, int S, int stride, int pad, float *workspace, int nthreads,
                           const Epilogue *ep, Conv2dPacked *packed);
/* dw_partial: nthreads * (K*C*R*S + K) floats of scratch for per-thread
 * weight-gradient sums, reduced in a fixed order (determinism).          */
void conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int N, int C, int H, int W, int K, int R, int S, int stride,
                     int pad, float *workspace, float *dw_partial, int nthreads);

/* bf16 compute for the im2col convolutions (fp32 master weights and
 * accumulation; see conv2d/plan.c). Returns whether it is on: off when the CPU
 * or the build lacks AVX512_BF16. Process-wide; set before training. */
int conv2d_set_bf16(int on);
/* ---- linear ------------------------------------------------------------
 * y[n,m] = b[m] + sum_d w[m,d] x[n,d]      (PyTorch nn.Linear layout)
 * x (N,D)  w (M,D)  b (M) or NULL  y (N,M)                               */
void linear_forward_ref(float *y, const float *x, const float *w, const float *b, int N, int D, int M);
void linear_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int N, int D, int M);
void linear_forward(float *y, const float *x, const float *w, const float *b, int N, int D, int M);
/* Inference: linear_forward followed by ep (NULL: none). One image runs
 * as a matrix-vector product, its rows split over up to nthreads threads
 * when the layer is large enough; more images as linear_forward. panels
 * (NULL: none): w packed by linear_pack_panels, which lets one image skip
 * the weights of its zero inputs when at least a tenth of them are zero
 * (the index list behind the panels is written: one caller at a time). */
void linear_forward_ep(float *y, const float *x, const float *w, const float *b, int N, int D, int M,
                       const Epilogue *ep, int nthreads, float *panels);
/* Floats of w's column-panel form (w^T in blocks of outputs, plus the
 * nonzero-input list), and packing it from w (M,D). */
size_t linear_panels_floats(int D, int M);
void linear_pack_panels(float *panels, const float *w, int D, int M);
void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int N, int D, int M);

/* ---- pooling (window F, stride T, no padding) ---------------------------
 * maxpool: y = max over window; argmax (N,C,P,Q) int32 index into the
 * input plane (h*W+w), saved for backward; ties go to the first maximum.
 * avgpool: y = mean over window.                                          */
void maxpool_forward(float *y, int32_t *argmax, const float *x, int N, int C, int H, int W, int F, int T);
void maxpool_backward(float *dx, const float *dy, const int32_t *argmax, int N, int C, int H, int W, int F, int T);
void maxpool_forward_ref(float *y, const float *x, int N, int C, int H, int W, int F, int T);
void avgpool_forward(float *y, const float *x, int N, int C, int H, int W, int F, int T);
void avgpool_backward(float *dx, const float *dy, int N, int C, int H, int W, int F, int T);
void avgpool_forward_ref(float *y, const float *x, int N, int C, int H, int W, int F, int T);
void avgpool_backward_ref(float *dx, const float *dy, int N, int C, int H, int W, int F, int T);

/* ---- element-wise activations (n = total element count) ----------------
 * relu: y = max(x,0), dx = dy*(y>0).  tanh: dx = dy*(1-y^2).              */
void relu_forward(float *y, const float *x, size_t n);
void relu_backward(float *dx, const float *dy, const float *y, size_t n);
void tanh_forward(float *y, const float *x, size_t n);
void tanh_forward_ref(float *y, const float *x, size_t n);
void tanh_backward(float *dx, const float *dy, const float *y, size_t n);

/* ---- batch norm over (N, C, L): L = H*W for 2d, 1 for 1d ----------------
 * Training: per-channel batch mean/var (biased var for normalising,
 * unbiased for the running estimate, as PyTorch); running = (1-m)*running + m*batch.
 * xhat = (x-mean)*rstd, y = gamma*xhat + beta. Saves mean, rstd (C) for backward.
 * Eval: uses running_mean/running_var.                                    */
void batchnorm_forward_train(float *y, float *save_mean, float *save_rstd, float *running_mean,
                             float *running_var, const float *x, const float *gamma,
                             const float *beta, int N, int C, int L, float eps, float momentum);
void batchnorm_forward_eval(float *y, const float *x, const float *gamma, const float *beta,
                            const float *running_mean, const float *running_var, int N, int C,
                            int L, float eps);
void batchnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *gamma, const float *save_mean, const float *save_rstd,
                        int N, int C, int L);
/* Batch norm with a neighbouring ReLU as one op in training: the same
 * values as the two layers, two fewer passes over the batch each way.
 *   BN_RELU_AFTER:  y = max(bn(x), 0); backward takes the gradient of the
 *                   ReLU's output and needs beta (it recomputes where the
 *                   ReLU passed from x);
 *   BN_RELU_BEFORE: y = bn(max(x, 0)); x is the ReLU's input and dx its
 *                   gradient. */
typedef enum { BN_PLAIN, BN_RELU_AFTER, BN_RELU_BEFORE } BnFusion;
void batchnorm_fused_forward_train(BnFusion f, float *y, float *save_mean, float *save_rstd, float *running_mean,
                                   float *running_var, const float *x, const float *gamma, const float *beta,
                                   int N, int C, int L, float eps, float momentum);
void batchnorm_fused_backward(BnFusion f, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                              const float *gamma, const float *beta, const float *save_mean, const float *save_rstd,
                              int N, int C, int L);

/* ---- dropout (inverted: kept units scaled by 1/(1-p) in training) -------
 * mask holds the per-element scale (0 or 1/(1-p)); dropout2d draws one
 * mask value per (n, c) plane of L elements. u: uniform random numbers
 * supplied by the caller (N*C*L for dropout, N*C for dropout2d) so the
 * kernel stays pure and the RNG stays in the layer.                       */
void dropout_forward(float *y, float *mask, const float *x, const float *u, size_t n, float p);
void dropout2d_forward(float *y, float *mask, const float *x, const float *u, int N, int C, int L, float p);
void dropout_backward(float *dx, const float *dy, const float *mask, size_t n);
void dropout2d_backward(float *dx, const float *dy, const float *mask, int N, int C, int L);

/* ---- softmax + cross-entropy (mean over the batch) ----------------------
 * logits (N,M), labels (N) -> probs (N,M), returns mean loss;
 * dlogits = (probs - onehot) / N.                                         */
float softmax_xent_forward(float *probs, const float *logits, const uint8_t *labels, int N, int M);
void softmax_xent_backward(float *dlogits, const float *probs, const uint8_t *labels, int N, int M);
void softmax_forward(float *probs, const float *logits, int N, int M);

/* ---- label smoothing (label_smooth.c) ------------------------------------
 * The softmax cross-entropy against q = (1 - eps)·onehot(y) + eps/M over the
 * M classes: PyTorch's CrossEntropyLoss(label_smoothing=eps), Keras's
 * CategoricalCrossentropy(label_smoothing=eps). Training's loss and
 * gradient, and the validation loss of a run trained on it.
 * label_smooth_loss_sum: the sum over the N rows of -sum_k q_k log softmax(z)_k.
 * label_smooth_grad: turns softmax_xent_backward's (probs - onehot)/B of N
 * rows into (probs - q)/B by adding eps·(onehot - 1/M)/B to each row; B is
 * the batch the loss is averaged over (N, or a distributed step's whole
 * batch).                                                                 */
double label_smooth_loss_sum(const float *logits, const uint8_t *labels, int N, int M, float eps);
void label_smooth_grad(float *dlogits, const uint8_t *labels, int N, int M, int B, float eps);

/* ---- ELU (Clevert et al. 2015) ------------------------------------------
 * y = x (x > 0), alpha*(exp(x)-1) (x <= 0);  dx = dy (y > 0), dy*(y+alpha)
 * (for x <= 0, dy/dx = alpha*exp(x) = y + alpha, so backward needs only y). */
void elu_forward(float *y, const float *x, size_t n, float alpha);
void elu_backward(float *dx, const float *dy, const float *y, size_t n, float alpha);

/* ---- graph merges (per-sample sizes: L = C*H*W elements) ----------------
 * add:    y = sum_i x_i, all (N, L);  dx_i = dy (every input gets dy).
 * concat: y (N, C_0+C_1+..., H*W) = the inputs' channels one after another,
 *         x_i (N, C_i, H*W);  dx_i = the matching channel slice of dy.
 * dx_i may be NULL (not wanted).                                          */
void add_forward(float *y, const float *const *xs, int n_in, int N, size_t L);
void add_backward(float *const *dxs, const float *dy, int n_in, int N, size_t L);
void concat_forward(float *y, const float *const *xs, const int *C, int n_in, int N, int HW);
void concat_backward(float *const *dxs, const float *dy, const int *C, int n_in, int N, int HW);

/* ---- global average pooling ---------------------------------------------
 * y[n,c] = (1/(H*W)) sum_{h,w} x[n,c,h,w]   x (N,C,H,W)  y (N,C)
 * dx[n,c,h,w] = dy[n,c] / (H*W)                                           */
void global_avgpool_forward(float *y, const float *x, int N, int C, int HW);
void global_avgpool_backward(float *dx, const float *dy, int N, int C, int HW);

/* ---- spatial transformer: affine_grid + bilinear grid_sample -------------
 * PyTorch semantics with zeros padding; `align` is align_corners (0: False,
 * the formulas below; 1: True, base x_q = -1 + 2q/(Q-1), ix = (gx+1)*(W-1)/2,
 * dgrid scaled by (W-1)/2 and (H-1)/2).
 * affine_grid: theta (N,2,3), grid (N,P,Q,2) of normalised (gx, gy) in
 *   [-1,1] units: base x_q = (2q+1)/Q - 1, y_p = (2p+1)/P - 1,
 *   (gx, gy) = theta[n] . (x_q, y_p, 1).
 *   backward: dtheta[n] += sum_{p,q} dgrid[n,p,q] (x) (x_q, y_p, 1)  (ADDS).
 * grid_sample: x (N,C,H,W), grid (N,P,Q,2) -> y (N,C,P,Q):
 *   ix = ((gx+1)*W - 1)/2, iy = ((gy+1)*H - 1)/2 (pixel units),
 *   y = sum of the 4 neighbours (x0=floor(ix), x0+1; same for y) weighted
 *   bilinearly, neighbours outside the image counting as 0.
 *   backward: dx (N,C,H,W) overwritten (NULL = not wanted); dgrid
 *   (N,P,Q,2) overwritten: d y / d ix * W/2 and d y / d iy * H/2 summed
 *   over channels.                                                         */
void affine_grid_forward(float *grid, const float *theta, int N, int P, int Q, int align);
void affine_grid_backward(float *dtheta, const float *dgrid, int N, int P, int Q, int align);
void grid_sample_forward(float *y, const float *x, const float *grid, int N, int C, int H, int W,
                         int P, int Q, int align);
void grid_sample_backward(float *dx, float *dgrid, const float *dy, const float *x,
                          const float *grid, int N, int C, int H, int W, int P, int Q, int align);

#endif
