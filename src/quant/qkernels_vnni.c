/* qkernels_vnni.c — the AVX512-VNNI int8 kernels (vpdpbusd: four u8 x s8
 * products added into each int32 lane) and the AMX-INT8 tile convolution
 * (tdpbsud: 16 x 16 such dot products per instruction), compiled with function-level
 * target attributes so that the portable build (x86-64-v2 outside
 * src/ops) has them too; qk_have_vnni() checks cpuid once and the caller
 * (qkernels.c) uses them only then.
 *
 * vpdpbusd multiplies unsigned by signed bytes, so activations enter as
 * u = x + 128 and each accumulator starts at bias - (in_zp + 128) * sum(w):
 * the same integer as qref.h's bias + sum(w * (x - in_zp)) (padding reads
 * u = in_zp + 128, adding 0). Vector additions wrap, and the true value
 * fits in int32 (qmodel_check bounds taps and biases), so the result is
 * exact; the requantization below is qref_requant's, lane by lane.
 *
 * Convolution: direct, on the input regrouped by channel quads and split
 * into stride phases (see DirectDims), 32 outputs x 8 channels per block,
 * one broadcast of four weights per channel and tap, the taps' addresses
 * from a table (tap_offsets) and the block's loop in inline assembly
 * (TAP8X2: GCC's code for the intrinsics moved the accumulators about); a
 * 2 x 2 max pool that alone reads a conv's output is computed in its
 * epilogue on the int32 sums (one requantization per pooled output); an
 * output of at most 16 positions runs on gathered taps. Dense: 64-byte
 * dot products, four outputs at a time, reduced.
 * The dense kernel also has a group form (QK_GROUP images per weight
 * load), the tables (VBMI), 2x2 average and max pools 16 outputs at a time,
 * and the AMX-INT8 tile convolution (below, with its own comment).
 * Left out on purpose: batching several images per weight load in the
 * convolutions (their weights stay in cache across images). */
#include <string.h>

#include "quant/qkernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

int qk_have_vnni(void) {
    static int have = -1;
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    }
    return have;
}

/* Convolutions run direct (no im2col) on the "wide grid": the input,
 * padded, is split into stride x stride phases (phase (a, b) holds padded
 * rows a, a+S, ... and columns b, b+S, ...), each hp = oh + (kh-1)/S rows of
 * wp = ow + (kw-1)/S columns, regrouped as (c/4, phase, hp*wp (+ slack),
 * c%4) bytes. Output position q = oy*wp + ox (ox < wp: the last columns of
 * each row are computed and dropped) reads tap (i, j) in phase (i%S, j%S)
 * at q + (i/S)*wp + j/S, so 16 consecutive q are one 64-byte load. */
typedef struct {
    int s;             /* stride: s*s phases */
    int hp, wp, plane; /* rows, columns, positions per phase plane (with slack for the last loads) */
    int q32;           /* wide-grid outputs, rounded up to 32 (two 16-lane blocks) */
    int w16;           /* wp rounded up to 16 (the regrouping's row buffers) */
    int slide;         /* one input channel, stride 1 (first layers): the quads hold 4 neighbouring
                          columns instead of 4 channels, so a kernel row is ceil(kw/4) loads, not kw */
    int groups;        /* loads per kernel row: kw, or ceil(kw/4) when sliding */
} DirectDims;

/* The valid columns of nk channels' wide rows (wy: d.q32 bytes a channel,
 * rows d.wp apart) into y's planes from channel k0: 16-byte masked moves,
 * whose reads past a row stay inside the scratch. */
VNNI_TARGET static void store_valid_columns(
    int8_t *y, const int8_t *wy, DirectDims d, int k0, int nk, int OH, int OW) {
    for (int j = 0; j < nk; j++)
        for (int oy = 0; oy < OH; oy++) {
            int8_t *dst = y + ((size_t)(k0 + j) * OH + oy) * OW;
            const int8_t *src = wy + (size_t)j * d.q32 + (size_t)oy * d.wp;
            for (int ox = 0; ox < OW; ox += 16) {
                int rem = OW - ox;
                __mmask16 m = rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1);
                _mm_mask_storeu_epi8(dst + ox, m, _mm_loadu_si128((const __m128i *)(src + ox)));
            }
        }
}


static DirectDims direct_dims(const QOp *op) {
    DirectDims d;
    d.s = op->stride;
    d.slide = qk_conv_slides(op);
    d.groups = d.slide ? (op->kw + 3) / 4 : op->kw;
    d.hp = op->oh + (op->kh - 1) / d.s;
    d.wp = op->ow + (op->kw - 1) / d.s;
    d.q32 = (op->oh * d.wp + 31) / 32 * 32;
    d.w16 = (d.wp + 15) / 16 * 16;
    /* the last load's end */
    d.plane = d.q32 + (op->kh - 1) / d.s * d.wp + (d.slide ? (d.groups - 1) * 4 : (op->kw - 1) / d.s);
    if (d.plane < d.hp * d.wp + d.w16) d.plane = d.hp * d.wp + d.w16; /* the regrouping's last row */
    return d;
}

/* Bytes of the direct path's scratch: the regrouped input, 4 row buffers
 * (sliding: the padded grid), the wide-grid output of 8 channels, the tap
 * offsets (tap_offsets), 8 int32 rows for a fused pool or the gathered
 * taps of a small output (gather_taps). */
static size_t direct_scratch(const QOp *op) {
    DirectDims d = direct_dims(op);
    size_t rows = d.slide ? (size_t)d.hp * d.wp + 64 : 4 * (size_t)d.w16;
    size_t taps = (size_t)(op->c + 3) / 4 * op->kh * d.groups;
    size_t tail = 8 * ((size_t)d.q32 + 64) * 4, gathered = taps * 64; /* a fused pool's rows, or gather_taps' */
    return (size_t)(op->c + 3) / 4 * d.s * d.s * d.plane * 4 + rows + 8 * (size_t)d.q32 + 64 + taps * sizeof(ptrdiff_t) +
           64 + (tail > gathered ? tail : gathered) + 64;
}

size_t qk_vnni_scratch(const QOp *op, const QOpFast *f) {
    if (op->type != QOP_CONV) return QK_GROUP * (size_t)f->t4 + 64 + QK_GROUP * 32 * 4 + 64;
    /* AMX: 32 rows of wide-grid output instead of 8, and 4 int32 tiles */
    /* AMX: 32 rows of wide-grid output instead of 8, 4 int32 tiles, 32 int32 rows for the fused pool */
    size_t q32 = (size_t)direct_dims(op).q32;
    return direct_scratch(op) + (qk_conv_amx_ok(op) ? 24 * q32 + 4096 + 64 + 32 * (q32 + 64) * 4 + 64 : 0);
}

/* One channel's requantization constants, broadcast once (Rq16) and
 * applied to 16 accumulators at a time (rq16): qref_requant lane by lane
 * (exact: see the file comment). beff is added to acc first (wrapping, as
 * the file comment says). Two ways:
 *  - short (q.fast): the ratio mult / 2^shift rewritten as m' / 2^s' with
 *    m' odd (halving an even multiplier and the shift together changes no
 *    product's quotient) and s' >= 33. Then with H = floor(acc * m' / 2^32)
 *    (the high halves of two vpmuldq), round-half-up(acc * m' / 2^s') =
 *    (H + 2^(s'-33)) >> (s'-32) exactly, since 2^(s'-1) is a multiple of
 *    2^32 and the low 32 bits of the product cannot carry; and half-up is
 *    half-away-from-zero here because a tie needs acc * m' to be a multiple
 *    of 2^32, which (m' odd, |acc| < 2^31) only acc = 0 is. |H| < 2^30, so
 *    nothing saturates before the int8 clamp.
 *  - long (any mult and shift): |acc| * mult as two 64-bit halves, rounded
 *    and shifted unsigned; magnitudes above 512 are clamped before
 *    narrowing, which changes nothing after the int8 clamp. */
typedef struct {
    __m512i m, rnd, zp, lo, hi, beff;
    __m128i sh;
    int fast;
} Rq16;

VNNI_TARGET static inline Rq16 rq16_make(int32_t beff, int32_t mult, int32_t shift, int32_t zp, int32_t lo,
                                         int32_t hi) {
    Rq16 q;
    int32_t m = mult, s = shift;
    while (m != 0 && m % 2 == 0 && s > 33) m /= 2, s--;
    if (m == 0 && s > 33) s = 33;
    q.fast = s >= 33 && (m == 0 || m % 2 == 1);
    if (q.fast) {
        q.m = _mm512_set1_epi64((int64_t)m);
        q.rnd = _mm512_set1_epi32((int32_t)1 << (s - 33));
        q.sh = _mm_cvtsi32_si128(s - 32);
    } else {
        q.m = _mm512_set1_epi64((int64_t)(uint32_t)mult);
        q.rnd = _mm512_set1_epi64((int64_t)((uint64_t)1 << (shift - 1)));
        q.sh = _mm_cvtsi32_si128(shift);
    }
    q.zp = _mm512_set1_epi32(zp);
    q.lo = _mm512_set1_epi32(lo);
    q.hi = _mm512_set1_epi32(hi);
    q.beff = _mm512_set1_epi32(beff);
    return q;
}

VNNI_TARGET static inline __m128i rq16(__m512i acc, const Rq16 *q) {
    acc = _mm512_add_epi32(acc, q->beff);
    __m512i r;
    if (q->fast) {
        /* the products' high halves: even lanes' from ev, odd lanes' from od */
        const __m512i hi_idx = _mm512_setr_epi32(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
        __m512i ev = _mm512_mul_epi32(acc, q->m);
        __m512i od = _mm512_mul_epi32(_mm512_srli_epi64(acc, 32), q->m);
        r = _mm512_sra_epi32(_mm512_add_epi32(_mm512_permutex2var_epi32(ev, hi_idx, od), q->rnd), q->sh);
    } else {
        const __m512i zero = _mm512_setzero_si512(), cap = _mm512_set1_epi64(512);
        __mmask16 neg = _mm512_cmplt_epi32_mask(acc, zero);
        __m512i a = _mm512_abs_epi32(acc); /* INT32_MIN stays 0x80000000: 2^31 as unsigned */
        __m512i ev = _mm512_mul_epu32(a, q->m);
        __m512i od = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), q->m);
        ev = _mm512_min_epu64(_mm512_srl_epi64(_mm512_add_epi64(ev, q->rnd), q->sh), cap);
        od = _mm512_min_epu64(_mm512_srl_epi64(_mm512_add_epi64(od, q->rnd), q->sh), cap);
        /* od's low halves into the odd lanes */
        r = _mm512_mask_shuffle_epi32(ev, (__mmask16)0xAAAA, od, (_MM_PERM_ENUM)0xA0);
        r = _mm512_mask_sub_epi32(r, neg, zero, r);
    }
    r = _mm512_add_epi32(r, q->zp);
    r = _mm512_max_epi32(r, q->lo);
    r = _mm512_min_epi32(r, q->hi);
    return _mm512_cvtepi32_epi8(r);
}

/* Four weights as one int32 (for the broadcast). */
static inline int32_t load4(const int8_t *w) {
    int32_t v;
    memcpy(&v, w, 4);
    return v;
}

/* Sliding regrouping of a one-channel input: g = the padded hp x wp grid
 * (x + 128, padding in_zp + 128, then zeros), xp[q*4 + b] = g[q + b] (one
 * byte shuffle per 4 positions). A quad may run into the next row only
 * where the weight is zero (taps beyond kw). */
VNNI_TARGET static void slide_regroup(const QOp *op, const int8_t *x, uint8_t *xp, uint8_t *g, DirectDims d) {
    const int H = op->h, W = op->w, PT = op->pad_t, PL = op->pad_l, wp = d.wp;
    const uint8_t pad = (uint8_t)(op->in_zp + 128);
    const int lo = PL < wp ? PL : wp, hi = PL + W < wp ? PL + W : wp;
    const size_t n = (size_t)d.hp * wp;
    for (int yy = 0; yy < d.hp; yy++) {
        uint8_t *t = g + (size_t)yy * wp;
        int iy = yy - PT;
        if (iy < 0 || iy >= H) {
            memset(t, pad, (size_t)wp);
            continue;
        }
        const int8_t *src = x + (size_t)iy * W - PL;
        memset(t, pad, (size_t)lo);
        for (int xx = lo; xx < hi; xx++) t[xx] = (uint8_t)src[xx] ^ 0x80;
        memset(t + hi, pad, (size_t)(wp - hi));
    }
    memset(g + n, 0, 16); /* the last shuffles' reads (the buffer has 64 bytes of slack) */
    const __m128i quads = _mm_setr_epi8(0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6);
    for (size_t q = 0; q < n; q += 4) /* the last one writes up to 3 quads into the slack, cleared next */
        _mm_storeu_si128((__m128i *)(xp + q * 4), _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(g + q)), quads));
    memset(xp + n * 4, 0, ((size_t)d.plane - n) * 4);
}

/* xp (c/4, phase, plane, c%4) = x + 128 on each phase's hp x wp grid,
 * padding in_zp + 128, channels >= C and the slack after the grid 0: each
 * group of 4 channel rows is built in tmp (4 x w16 bytes) and interleaved
 * 16 columns at a time (a row's last interleave spills into the next row,
 * written after it, or into the slack, cleared last). */
VNNI_TARGET static void pad_regroup12(const QOp *op, const int8_t *x, uint8_t *xp, DirectDims d);

VNNI_TARGET static void pad_regroup(const QOp *op, const int8_t *x, uint8_t *xp, uint8_t *tmp, DirectDims d) {
    const int C = op->c, H = op->h, W = op->w, PT = op->pad_t, PL = op->pad_l, C4 = (C + 3) / 4, S = d.s;
    const int wp = d.wp, w16 = d.w16;
    const uint8_t pad = (uint8_t)(op->in_zp + 128);
    if (S <= 2 && wp <= 16 * 32) {
        pad_regroup12(op, x, xp, d);
        return;
    }
    for (int c4 = 0; c4 < C4; c4++)
        for (int pa = 0; pa < S; pa++)
            for (int pb = 0; pb < S; pb++) {
                uint8_t *plane = xp + ((size_t)(c4 * S + pa) * S + pb) * d.plane * 4;
                /* columns cx with 0 <= cx*S + pb - PL < W */
                int lo = PL - pb > 0 ? (PL - pb + S - 1) / S : 0;
                int hi = W - 1 + PL - pb >= 0 ? (W - 1 + PL - pb) / S + 1 : 0;
                if (hi > wp) hi = wp;
                if (lo > hi) lo = hi;
                for (int yy = 0; yy < d.hp; yy++) {
                    int iy = yy * S + pa - PT;
                    for (int cc = 0; cc < 4; cc++) {
                        int c = c4 * 4 + cc;
                        uint8_t *t = tmp + (size_t)cc * w16;
                        if (c >= C || iy < 0 || iy >= H) {
                            memset(t, c >= C ? 0 : pad, (size_t)w16);
                            continue;
                        }
                        const int8_t *src = x + ((size_t)c * H + iy) * W + pb - PL;
                        memset(t, pad, (size_t)lo);
                        if (S == 1) /* the common case, vectorised */
                            for (int xx = lo; xx < hi; xx++) t[xx] = (uint8_t)src[xx] ^ 0x80;
                        else
                            for (int xx = lo; xx < hi; xx++) t[xx] = (uint8_t)src[xx * S] ^ 0x80;
                        memset(t + hi, pad, (size_t)(w16 - hi));
                    }
                    uint8_t *dst = plane + (size_t)yy * wp * 4;
                    for (int xx = 0; xx < wp; xx += 16) {
                        __m128i a = _mm_loadu_si128((const __m128i *)(tmp + xx));
                        __m128i b = _mm_loadu_si128((const __m128i *)(tmp + w16 + xx));
                        __m128i c = _mm_loadu_si128((const __m128i *)(tmp + 2 * (size_t)w16 + xx));
                        __m128i e = _mm_loadu_si128((const __m128i *)(tmp + 3 * (size_t)w16 + xx));
                        __m128i ab0 = _mm_unpacklo_epi8(a, b), ab1 = _mm_unpackhi_epi8(a, b);
                        __m128i ce0 = _mm_unpacklo_epi8(c, e), ce1 = _mm_unpackhi_epi8(c, e);
                        _mm_storeu_si128((__m128i *)(dst + xx * 4), _mm_unpacklo_epi16(ab0, ce0));
                        _mm_storeu_si128((__m128i *)(dst + xx * 4 + 16), _mm_unpackhi_epi16(ab0, ce0));
                        _mm_storeu_si128((__m128i *)(dst + xx * 4 + 32), _mm_unpacklo_epi16(ab1, ce1));
                        _mm_storeu_si128((__m128i *)(dst + xx * 4 + 48), _mm_unpackhi_epi16(ab1, ce1));
                    }
                }
                memset(plane + (size_t)d.hp * wp * 4, 0, ((size_t)d.plane - (size_t)d.hp * wp) * 4);
            }
}

/* pad_regroup for strides 1 and 2 without the row buffers: each 16-column
 * piece of 4 channel rows is one masked load per channel (16*S bytes: the
 * columns inside the input; padding elsewhere), every S-th byte kept,
 * flipped to u8 and interleaved in registers. The same bytes as the
 * general path. */
VNNI_TARGET static void pad_regroup12(const QOp *op, const int8_t *x, uint8_t *xp, DirectDims d) {
    const int C = op->c, H = op->h, W = op->w, PT = op->pad_t, PL = op->pad_l, C4 = (C + 3) / 4, wp = d.wp;
    const int S = d.s, nch = (wp + 15) / 16;
    const __m128i flip = _mm_set1_epi8((char)0x80), padv = _mm_set1_epi8((char)(op->in_zp + 128));
    const __m256i raw_pad = _mm256_set1_epi8((char)op->in_zp);
    const __m128i zero = _mm_setzero_si128();
    __mmask32 mask[2][32];
    for (int pb = 0; pb < S; pb++)
        for (int ch = 0; ch < nch; ch++) {
            uint32_t m = 0;
            for (int b = 0; b < 16; b++) {
                int col = ch * 16 + b, ix = col * S + pb - PL;
                if (col < wp && ix >= 0 && ix < W) m |= 1u << (b * S);
            }
            mask[pb][ch] = (__mmask32)m;
        }
    for (int c4 = 0; c4 < C4; c4++)
        for (int pa = 0; pa < S; pa++)
            for (int pb = 0; pb < S; pb++) {
                uint8_t *plane = xp + ((size_t)(c4 * S + pa) * S + pb) * d.plane * 4;
                for (int yy = 0; yy < d.hp; yy++) {
                    const int iy = yy * S + pa - PT, inside = iy >= 0 && iy < H;
                    uint8_t *dst = plane + (size_t)yy * wp * 4;
                    for (int ch = 0; ch < nch; ch++) {
                        const __mmask32 mk = mask[pb][ch];
                        __m128i v[4];
                        for (int cc = 0; cc < 4; cc++) {
                            int c = c4 * 4 + cc;
                            if (c >= C) {
                                v[cc] = zero;
                            } else if (!inside || !mk) {
                                v[cc] = padv;
                            } else {
                                /* masked-off lanes are not read: the address may lie outside the row */
                                const int8_t *src = x + ((size_t)c * H + iy) * W + (ptrdiff_t)(ch * 16 * S + pb - PL);
                                __m256i l = _mm256_mask_loadu_epi8(raw_pad, mk, (const void *)src);
                                __m128i e = S == 1 ? _mm256_castsi256_si128(l) : _mm256_cvtepi16_epi8(l);
                                v[cc] = _mm_xor_si128(e, flip);
                            }
                        }
                        __m128i ab0 = _mm_unpacklo_epi8(v[0], v[1]), ab1 = _mm_unpackhi_epi8(v[0], v[1]);
                        __m128i ce0 = _mm_unpacklo_epi8(v[2], v[3]), ce1 = _mm_unpackhi_epi8(v[2], v[3]);
                        uint8_t *o = dst + (size_t)ch * 64;
                        _mm_storeu_si128((__m128i *)o, _mm_unpacklo_epi16(ab0, ce0));
                        _mm_storeu_si128((__m128i *)(o + 16), _mm_unpackhi_epi16(ab0, ce0));
                        _mm_storeu_si128((__m128i *)(o + 32), _mm_unpacklo_epi16(ab1, ce1));
                        _mm_storeu_si128((__m128i *)(o + 48), _mm_unpackhi_epi16(ab1, ce1));
                    }
                }
                memset(plane + (size_t)d.hp * wp * 4, 0, ((size_t)d.plane - (size_t)d.hp * wp) * 4);
            }
}

/* The byte offset in xp of each tap's first load, in wdirect's tap order
 * (c/4, i, load of the kernel row): one table per call, so the block loop
 * does no division by the stride. Returns the number of taps. */
static int tap_offsets(const QOp *op, DirectDims d, ptrdiff_t *off) {
    const int C4 = (op->c + 3) / 4, S = d.s;
    int n = 0;
    for (int c4 = 0; c4 < C4; c4++)
        for (int i = 0; i < op->kh; i++) {
            size_t row = ((size_t)(c4 * S + i % S) * S * d.plane + (size_t)(i / S) * d.wp) * 4;
            for (int jj = 0; jj < d.groups; jj++)
                off[n++] = (ptrdiff_t)(d.slide ? row + (size_t)jj * 16 : row + ((size_t)(jj % S) * d.plane + jj / S) * 4);
        }
    return n;
}

/* 2 x 2 stride-2 max pool of channel rows of int32 wide-grid accumulators
 * (acc: nk rows of rs values, wp per grid row), requantized once per
 * pooled output: y (nk, poh, pow). */
VNNI_TARGET static void pool_requant(const QOp *pool, const int32_t *acc, size_t rs, int wp, const Rq16 *rq, int nk,
                                    int8_t *y) {
    const int POH = pool->oh, POW = pool->ow;
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    for (int j = 0; j < nk; j++)
        for (int py = 0; py < POH; py++) {
            const int32_t *r0 = acc + (size_t)j * rs + (size_t)(2 * py) * wp, *r1 = r0 + wp;
            int8_t *dst = y + ((size_t)j * POH + py) * POW;
            for (int px = 0; px < POW; px += 16) {
                /* lanes past the row's end read other (finite) accumulators and are not stored */
                __m512i v0 = _mm512_max_epi32(_mm512_loadu_si512(r0 + 2 * px), _mm512_loadu_si512(r1 + 2 * px));
                __m512i v1 =
                    _mm512_max_epi32(_mm512_loadu_si512(r0 + 2 * px + 16), _mm512_loadu_si512(r1 + 2 * px + 16));
                __m512i m =
                    _mm512_max_epi32(_mm512_permutex2var_epi32(v0, ev, v1), _mm512_permutex2var_epi32(v0, od, v1));
                int rem = POW - px < 16 ? POW - px : 16;
                _mm_mask_storeu_epi8(dst + px, (__mmask16)((1u << rem) - 1), rq16(m, &rq[j]));
            }
        }
}

/* One tap of the block: two 64-byte loads at p (32 outputs' quads) and,
 * for each of 8 output channels j, the broadcast of its four weights at
 * w + j*td, added into aj (the first 16 outputs) and cj. Inline assembly
 * on named accumulators because GCC 12 copies vpdpbusd's accumulators
 * between registers and the stack at every step when written with
 * intrinsics on an array (a third of the peak); two statements, since one
 * would pass asm's limit of 30 operands. */
#define DPB2(W, A, B)                                                                                                  \
    "vpbroadcastd " W ", %[b]\n\t"                                                                                     \
    "vpdpbusd %[b], %[v0], %[" A "]\n\t"                                                                               \
    "vpdpbusd %[b], %[v1], %[" B "]\n\t"
#define DPB8(W)                                                                                                        \
    DPB2("(%[" W "])", "a0", "c0") DPB2("(%[" W "],%[td])", "a1", "c1") DPB2("(%[" W "],%[td],2)", "a2", "c2")        \
        DPB2("(%[" W "],%[td3])", "a3", "c3")
#define TAP8X2(P_, W_, TD_, TD3_)                                                                                          \
    do {                                                                                                               \
        __m512i v0_, v1_, b_;                                                                                          \
        const int8_t *w4_ = (W_) + 4 * (TD_);                                                                            \
        __asm__("vmovdqu64 (%[p]), %[v0]\n\tvmovdqu64 64(%[p]), %[v1]\n\t" DPB8("w")                                   \
                : [a0] "+v"(a0), [a1] "+v"(a1), [a2] "+v"(a2), [a3] "+v"(a3), [c0] "+v"(c0), [c1] "+v"(c1),            \
                  [c2] "+v"(c2), [c3] "+v"(c3), [v0] "=&v"(v0_), [v1] "=&v"(v1_), [b] "=&v"(b_)                        \
                : [p] "r"(P_), [w] "r"(W_), [td] "r"(TD_), [td3] "r"(TD3_)                                             \
                : "memory");                                                                                           \
        __asm__(DPB8("w")                                                                                              \
                : [a0] "+v"(a4), [a1] "+v"(a5), [a2] "+v"(a6), [a3] "+v"(a7), [c0] "+v"(c4), [c1] "+v"(c5),            \
                  [c2] "+v"(c6), [c3] "+v"(c7), [b] "=&v"(b_)                                                          \
                : [v0] "v"(v0_), [v1] "v"(v1_), [w] "r"(w4_), [td] "r"(TD_), [td3] "r"(TD3_)                         \
                : "memory");                                                                                           \
    } while (0)

/* TAP8X2 for one 16-lane block: one load at p, accumulators a0..a7. */
#define DPB1(W, A)                                                                                                     \
    "vpbroadcastd " W ", %[b]\n\t"                                                                                     \
    "vpdpbusd %[b], %[v0], %[" A "]\n\t"
#define TAP8X1(P_, W_, TD_, TD3_)                                                                                      \
    do {                                                                                                               \
        __m512i v0_, b_;                                                                                               \
        const int8_t *w4_ = (W_) + 4 * (TD_);                                                                          \
        __asm__("vmovdqu64 (%[p]), %[v0]\n\t" DPB1("(%[w])", "a0") DPB1("(%[w],%[td])", "a1")                          \
                    DPB1("(%[w],%[td],2)", "a2") DPB1("(%[w],%[td3])", "a3") DPB1("(%[w4])", "a4")                     \
                        DPB1("(%[w4],%[td])", "a5") DPB1("(%[w4],%[td],2)", "a6") DPB1("(%[w4],%[td3])", "a7")         \
                : [a0] "+v"(a0), [a1] "+v"(a1), [a2] "+v"(a2), [a3] "+v"(a3), [a4] "+v"(a4), [a5] "+v"(a5),            \
                  [a6] "+v"(a6), [a7] "+v"(a7), [v0] "=&v"(v0_), [b] "=&v"(b_)                                         \
                : [p] "r"(P_), [w] "r"(W_), [w4] "r"(w4_), [td] "r"(TD_), [td3] "r"(TD3_)                              \
                : "memory");                                                                                           \
    } while (0)

/* direct_block for the grid's last 16 outputs when no more remain (small
 * outputs: a 4 x 4 map's wide grid is 24 positions, half of a 32 block). */
VNNI_TARGET static inline __attribute__((always_inline)) void
direct_block16(const uint8_t *xp, const ptrdiff_t *off, int taps, int td, DirectDims d, const int8_t *wk,
               const Rq16 *rq, int nk, int q0, int8_t *wy, int32_t *accp, size_t rs) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    const uint8_t *base = xp + (size_t)q0 * 4;
    const int8_t *wq = wk;
    const ptrdiff_t td1 = td, td3 = 3 * (ptrdiff_t)td;
    for (int t = 0; t < taps; t++, wq += 4) TAP8X1(base + off[t], wq, td1, td3);
    const __m512i acc[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
    for (int j = 0; j < nk; j++) {
        if (accp)
            _mm512_storeu_si512(accp + (size_t)j * rs + q0, acc[j]);
        else
            _mm_storeu_si128((__m128i *)(wy + (size_t)j * d.q32 + q0), rq16(acc[j], &rq[j]));
    }
}

/* 32 wide-grid outputs (two 16-lane blocks) x 8 channels: per tap (the
 * offsets table) two 64-byte loads and one broadcast of 4 weights per
 * output channel (TAP8X2); requantized into wy (8 rows of q32 bytes), or
 * with accp the raw int32 sums into accp's rows (rs apart) for a pool. */
VNNI_TARGET static inline __attribute__((always_inline)) void
direct_block(const uint8_t *xp, const ptrdiff_t *off, int taps, int td, DirectDims d, const int8_t *wk,
             const Rq16 *rq, int nk, int q0, int8_t *wy, int32_t *accp, size_t rs) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    __m512i c0 = a0, c1 = a0, c2 = a0, c3 = a0, c4 = a0, c5 = a0, c6 = a0, c7 = a0;
    const uint8_t *base = xp + (size_t)q0 * 4;
    const int8_t *wq = wk;
    const ptrdiff_t td1 = td, td3 = 3 * (ptrdiff_t)td;
    for (int t = 0; t < taps; t++, wq += 4) TAP8X2(base + off[t], wq, td1, td3);
    const __m512i acc[2][8] = {{a0, a1, a2, a3, a4, a5, a6, a7}, {c0, c1, c2, c3, c4, c5, c6, c7}};
    if (accp) { /* raw accumulators for a fused pool: bias and requantization after the max */
        for (int j = 0; j < nk; j++) {
            _mm512_storeu_si512(accp + (size_t)j * rs + q0, acc[0][j]);
            _mm512_storeu_si512(accp + (size_t)j * rs + q0 + 16, acc[1][j]);
        }
        return;
    }
    for (int j = 0; j < nk; j++) {
        _mm_storeu_si128((__m128i *)(wy + (size_t)j * d.q32 + q0), rq16(acc[0][j], &rq[j]));
        _mm_storeu_si128((__m128i *)(wy + (size_t)j * d.q32 + q0 + 16), rq16(acc[1][j], &rq[j]));
    }
}

/* For an output of at most 16 positions (a 4 x 4 map after a stride-2
 * 5 x 5 kernel, whose wide grid is 24 positions in a block of 32: half the
 * work wasted), the taps' input quads gathered per output position: row t
 * of g (64 bytes) holds tap t's quad for each of the P = oh*ow outputs,
 * zeros after; off[t] becomes t*64, so direct_block16 reads it as one
 * 16-position block with nothing wasted but the positions past P. */
VNNI_TARGET static void gather_taps(const QOp *op, DirectDims d, const uint8_t *xp, ptrdiff_t *off, int taps,
                                    uint8_t *g) {
    const int OH = op->oh, OW = op->ow;
    const __mmask16 row = (__mmask16)((1u << OW) - 1);
    for (int t = 0; t < taps; t++) {
        uint8_t *dst = g + (size_t)t * 64;
        const uint8_t *src = xp + off[t];
        _mm512_storeu_si512(dst, _mm512_setzero_si512());
        for (int oy = 0; oy < OH; oy++)
            _mm512_mask_storeu_epi32(dst + (size_t)oy * OW * 4, row,
                                     _mm512_maskz_loadu_epi32(row, src + (size_t)oy * d.wp * 4));
        off[t] = (ptrdiff_t)t * 64;
    }
}

/* Convolution on the wide grid, 8 output channels at a time; pool: NULL,
 * or the 2 x 2 stride-2 max pool written to y instead of the convolution's
 * output (max of the int32 sums, then one requantization per pooled
 * output: the requantization is monotone, so this is the pool of the
 * requantized outputs). Outputs of at most 16 positions run on gathered
 * taps (gather_taps) instead. */
VNNI_TARGET static void conv_direct(const QOp *op, const QOpFast *f, const QOp *pool, const int8_t *x, int8_t *y,
                                    uint8_t *scratch) {
    const DirectDims d = direct_dims(op);
    const int C4 = (op->c + 3) / 4, OH = op->oh, OW = op->ow, TD = f->tdir, P = OH * OW;
    uint8_t *xp = scratch, *tmp = xp + (size_t)C4 * d.s * d.s * d.plane * 4;
    int8_t *wy = (int8_t *)(tmp + (d.slide ? (size_t)d.hp * d.wp + 64 : 4 * (size_t)d.w16));
    ptrdiff_t *off = (ptrdiff_t *)(((uintptr_t)(wy + 8 * (size_t)d.q32) + 63) & ~(uintptr_t)63);
    const int taps_max = C4 * op->kh * d.groups;
    const size_t rs = (size_t)d.q32 + 64; /* the pool's int32 rows: one grid and slack for its last loads */
    uint8_t *tail = (uint8_t *)(((uintptr_t)(off + taps_max) + 63) & ~(uintptr_t)63);
    int32_t *accp = pool ? (int32_t *)tail : NULL;
    const int gathered = !pool && P <= 16 && d.q32 > 16;
    if (d.slide)
        slide_regroup(op, x, xp, tmp, d);
    else
        pad_regroup(op, x, xp, tmp, d);
    const int taps = tap_offsets(op, d, off), qn = OH * d.wp; /* qn: the wide-grid outputs kept */
    if (gathered) gather_taps(op, d, xp, off, taps, tail);
    for (int k0 = 0; k0 < op->k; k0 += 8) {
        const int8_t *wk = f->wdirect + (size_t)k0 * TD;
        int nk = op->k - k0 < 8 ? op->k - k0 : 8;
        Rq16 rq[8];
        for (int j = 0; j < nk; j++) {
            int k = k0 + j;
            int32_t beff = (int32_t)((uint32_t)op->bias[k] - (uint32_t)(op->in_zp + 128) * (uint32_t)f->wsum[k]);
            rq[j] = rq16_make(beff, op->mult[k], op->shift[k], op->out_zp, op->act_min[k], op->act_max[k]);
        }
        if (gathered) {
            direct_block16(tail, off, taps, TD, d, wk, rq, nk, 0, wy, NULL, rs);
            for (int j = 0; j < nk; j++)
                _mm_mask_storeu_epi8(y + (size_t)(k0 + j) * P, (__mmask16)((1u << P) - 1),
                                     _mm_loadu_si128((const __m128i *)(wy + (size_t)j * d.q32)));
            continue;
        }
        for (int q0 = 0; q0 < d.q32; q0 += 32)
            if (qn - q0 <= 16)
                direct_block16(xp, off, taps, TD, d, wk, rq, nk, q0, wy, accp, rs);
            else
                direct_block(xp, off, taps, TD, d, wk, rq, nk, q0, wy, accp, rs);
        if (pool)
            pool_requant(pool, accp, rs, d.wp, rq, nk, y + (size_t)k0 * pool->oh * pool->ow);
        else
            store_valid_columns(y, wy, d, k0, nk, OH, OW);
    }
}

VNNI_TARGET void qk_conv_vnni(const QOp *op, const QOpFast *f, const int8_t *x, int8_t *y, uint8_t *scratch) {
    conv_direct(op, f, NULL, x, y, scratch);
}

VNNI_TARGET void qk_conv_vnni_maxpool(const QOp *op, const QOpFast *f, const QOp *pool, const int8_t *x, int8_t *y,
                                      uint8_t *scratch) {
    conv_direct(op, f, pool, x, y, scratch);
}

VNNI_TARGET void qk_dense_vnni(const QOp *op, const QOpFast *f, const int8_t *x, int8_t *y, uint8_t *scratch) {
    uint8_t *u = scratch;
    memset(u, 0, (size_t)f->t4);
    for (int t = 0; t < f->t; t++) u[t] = (uint8_t)(x[t] + 128);
    /* four output rows at a time: four independent dpbusd chains (the rows
     * up to k8 exist, zero-padded) */
    for (int k0 = 0; k0 < op->k; k0 += 4) {
        const int8_t *w = f->wpack + (size_t)k0 * f->t4;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        for (int t = 0; t < f->t4; t += 64) {
            __m512i v = _mm512_loadu_si512(u + t);
            a0 = _mm512_dpbusd_epi32(a0, v, _mm512_loadu_si512(w + t));
            a1 = _mm512_dpbusd_epi32(a1, v, _mm512_loadu_si512(w + f->t4 + t));
            a2 = _mm512_dpbusd_epi32(a2, v, _mm512_loadu_si512(w + 2 * (size_t)f->t4 + t));
            a3 = _mm512_dpbusd_epi32(a3, v, _mm512_loadu_si512(w + 3 * (size_t)f->t4 + t));
        }
        uint32_t s[4] = {(uint32_t)_mm512_reduce_add_epi32(a0), (uint32_t)_mm512_reduce_add_epi32(a1),
                         (uint32_t)_mm512_reduce_add_epi32(a2), (uint32_t)_mm512_reduce_add_epi32(a3)};
        for (int j = 0; j < 4 && k0 + j < op->k; j++) {
            int k = k0 + j;
            uint32_t beff = (uint32_t)op->bias[k] - (uint32_t)(op->in_zp + 128) * (uint32_t)f->wsum[k];
            y[k] = qref_requant((int32_t)(s[j] + beff), op->mult[k], op->shift[k], op->out_zp, op->act_min[k],
                                op->act_max[k]);
        }
    }
}


/* The group's dense inputs as u8 (x + 128), each zero-padded to t4 bytes:
 * image g at u + g * t4. */
VNNI_TARGET static void group_inputs(const int8_t *const *xs, int t, size_t t4, uint8_t *u) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int g = 0; g < QK_GROUP; g++)
        for (size_t i = 0; i < t4; i += 64) {
            size_t n = (size_t)t > i ? (size_t)t - i : 0;
            __mmask64 m = n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1);
            /* lanes past t stay 0 */
            _mm512_storeu_si512(u + g * t4 + i,
                                _mm512_maskz_mov_epi8(m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, xs[g] + i),
                                                                          flip)));
        }
}

/* Four images' 64-byte inputs (at u, u + t4, u + 2 t4, u + 3 t4) against
 * two weight rows' 64 bytes (w0, w1): aG += input G . w0, cG += input G . w1;
 * inline assembly for the reason given at TAP8X2. */
#define DPBD(U, A, C)                                                                                                  \
    "vmovdqu64 " U ", %[v]\n\t"                                                                                        \
    "vpdpbusd %[w0], %[v], %[" A "]\n\t"                                                                               \
    "vpdpbusd %[w1], %[v], %[" C "]\n\t"
#define DENSE4(U_, T4_, T43_, A0, A1, A2, A3, C0, C1, C2, C3)                                                          \
    __asm__(DPBD("(%[u])", "a0", "c0") DPBD("(%[u],%[t4])", "a1", "c1") DPBD("(%[u],%[t4],2)", "a2", "c2")            \
                DPBD("(%[u],%[t43])", "a3", "c3")                                                                      \
            : [a0] "+v"(A0), [a1] "+v"(A1), [a2] "+v"(A2), [a3] "+v"(A3), [c0] "+v"(C0), [c1] "+v"(C1),                \
              [c2] "+v"(C2), [c3] "+v"(C3), [v] "=&v"(v_)                                                              \
            : [u] "r"(U_), [t4] "r"(T4_), [t43] "r"(T43_), [w0] "v"(w0_), [w1] "v"(w1_)                                \
            : "memory")

/* Dense over QK_GROUP (8) images at once: each 64-byte piece of two weight
 * rows is loaded once for all the images (the weights, up to a few hundred
 * KB, stream from cache once per group instead of once per image). xs[g],
 * ys[g]: image g's input and output; scratch: QK_GROUP * t4 bytes. */
VNNI_TARGET void qk_dense_vnni_group(const QOp *op, const QOpFast *f, const int8_t *const *xs, int8_t *const *ys,
                                     uint8_t *scratch) {
    _Static_assert(QK_GROUP == 8, "the assembly below handles 8 images");
    const size_t T4 = (size_t)f->t4;
    const ptrdiff_t t4 = (ptrdiff_t)T4, t43 = 3 * (ptrdiff_t)T4;
    group_inputs(xs, f->t, T4, scratch);
    for (int k0 = 0; k0 < op->k; k0 += 2) {
        const int8_t *w = f->wpack + (size_t)k0 * T4; /* rows up to k8 exist, zero-padded */
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        __m512i c0 = a0, c1 = a0, c2 = a0, c3 = a0, c4 = a0, c5 = a0, c6 = a0, c7 = a0;
        for (size_t t = 0; t < T4; t += 64) {
            __m512i w0_ = _mm512_loadu_si512(w + t), w1_ = _mm512_loadu_si512(w + T4 + t), v_;
            const uint8_t *u = scratch + t, *u4 = u + 4 * T4;
            DENSE4(u, t4, t43, a0, a1, a2, a3, c0, c1, c2, c3);
            DENSE4(u4, t4, t43, a4, a5, a6, a7, c4, c5, c6, c7);
        }
        const __m512i acc[2][QK_GROUP] = {{a0, a1, a2, a3, a4, a5, a6, a7}, {c0, c1, c2, c3, c4, c5, c6, c7}};
        for (int j = 0; j < 2 && k0 + j < op->k; j++) {
            int k = k0 + j;
            uint32_t beff = (uint32_t)op->bias[k] - (uint32_t)(op->in_zp + 128) * (uint32_t)f->wsum[k];
            for (int g = 0; g < QK_GROUP; g++) {
                uint32_t sum = (uint32_t)_mm512_reduce_add_epi32(acc[j][g]);
                ys[g][k] = qref_requant((int32_t)(sum + beff), op->mult[k], op->shift[k], op->out_zp,
                                        op->act_min[k], op->act_max[k]);
            }
        }
    }
}

/* ==== element-wise and pooling ============================================ */

int qk_have_vbmi(void) {
    static int have = -1;
    if (have < 0) {
        __builtin_cpu_init();
        have = qk_have_vnni() && __builtin_cpu_supports("avx512vbmi");
    }
    return have;
}

/* Table lookup, 64 bytes at a time: two vpermi2b give the entries of the
 * table's halves, the index's top bit picks one (only when qk_have_vbmi()). */
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void qk_lut_vbmi(const QOp *op, const int8_t *x, int8_t *y) {
    const __m512i t0 = _mm512_loadu_si512(op->lut), t1 = _mm512_loadu_si512(op->lut + 64);
    const __m512i t2 = _mm512_loadu_si512(op->lut + 128), t3 = _mm512_loadu_si512(op->lut + 192);
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const size_t n = (size_t)op->c * op->h * op->w;
    for (size_t i = 0; i < n; i += 64) {
        __mmask64 m = n - i >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (n - i)) - 1);
        __m512i u = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, x + i), flip); /* x + 128 */
        __m512i lo = _mm512_permutex2var_epi8(t0, u, t1), hi = _mm512_permutex2var_epi8(t2, u, t3);
        _mm512_mask_storeu_epi8(y + i, m, _mm512_mask_blend_epi8(_mm512_movepi8_mask(u), lo, hi));
    }
}

/* 2 x 2 average pooling with stride 2, 16 outputs at a time: the four
 * inputs of each window summed in int16 lanes, the sum requantized as
 * qref_avgpool does (window sum - 4 in_zp, then qref_requant). */
VNNI_TARGET void qk_avgpool2_vnni(const QOp *op, const int8_t *x, int8_t *y) {
    const int C = op->c, H = op->h, W = op->w, OH = op->oh, OW = op->ow;
    const Rq16 rq = rq16_make(-4 * op->in_zp, op->mult[0], op->shift[0], op->out_zp, op->act_min[0], op->act_max[0]);
    const __m512i ones = _mm512_set1_epi16(1);
    for (int c = 0; c < C; c++)
        for (int oy = 0; oy < OH; oy++) {
            const int8_t *r0 = x + ((size_t)c * H + 2 * (size_t)oy) * W, *r1 = r0 + W;
            int8_t *d = y + ((size_t)c * OH + oy) * OW;
            for (int ox = 0; ox < OW; ox += 16) {
                int rem = OW - ox < 16 ? OW - ox : 16;
                __mmask32 m = (__mmask32)(((uint64_t)1 << (2 * rem)) - 1);
                __m512i a = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, r0 + 2 * ox));
                __m512i b = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, r1 + 2 * ox));
                __m512i sum = _mm512_madd_epi16(_mm512_add_epi16(a, b), ones);
                _mm_mask_storeu_epi8(d + ox, (__mmask16)((1u << rem) - 1), rq16(sum, &rq));
            }
        }
}

/* 2 x 2 max pooling with stride 2, 16 outputs at a time (vertical max,
 * then the larger byte of each pair as int16 lanes). */
VNNI_TARGET void qk_maxpool2_vnni(const QOp *op, const int8_t *x, int8_t *y) {
    const int C = op->c, H = op->h, W = op->w, OH = op->oh, OW = op->ow;
    for (int c = 0; c < C; c++)
        for (int oy = 0; oy < OH; oy++) {
            const int8_t *r0 = x + ((size_t)c * H + 2 * (size_t)oy) * W, *r1 = r0 + W;
            int8_t *d = y + ((size_t)c * OH + oy) * OW;
            for (int ox = 0; ox < OW; ox += 16) {
                int rem = OW - ox < 16 ? OW - ox : 16;
                __mmask32 m = (__mmask32)(((uint64_t)1 << (2 * rem)) - 1);
                __m256i v = _mm256_max_epi8(_mm256_maskz_loadu_epi8(m, r0 + 2 * ox),
                                            _mm256_maskz_loadu_epi8(m, r1 + 2 * ox));
                __m256i ev = _mm256_srai_epi16(_mm256_slli_epi16(v, 8), 8), od = _mm256_srai_epi16(v, 8);
                _mm_mask_storeu_epi8(d + ox, (__mmask16)((1u << rem) - 1),
                                     _mm256_cvtepi16_epi8(_mm256_max_epi16(ev, od)));
            }
        }
}

/* ==== AMX-INT8 tiles ======================================================
 * The same direct convolution on the same regrouped input (pad_regroup),
 * with the roles of the VNNI kernel swapped into tiles: a B tile is kr
 * channel quads (rows, stride: one c/4 plane group) x 16 wide-grid
 * positions (4 bytes each: exactly the 64 bytes a VNNI load reads), an A
 * tile is 16 output channels x kr channel quads of one tap (packed at
 * load, qk_pack_amx), and tdpbsud adds their s8 x u8 products into a
 * 16 channels x 16 positions int32 tile. Four such tiles (32 channels x 32
 * positions) per block; then the same bias, requantization and copy-out as
 * the VNNI kernel, so every accumulator is the same integer. */

#define AMX_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-int8")))

/* Whether op's shape suits the tiles: a non-sliding conv with at least 4
 * channel quads that fill whole steps of kr <= 16 quads. */
int qk_conv_amx_ok(const QOp *op) {
    int c4 = (op->c + 3) / 4;
    return op->type == QOP_CONV && !qk_conv_slides(op) && c4 >= 4 && (c4 <= 16 || c4 % 16 == 0);
}

void qk_pack_amx(const QOp *op, QOpFast *f) {
    const int C4 = (op->c + 3) / 4, kr = C4 <= 16 ? C4 : 16, KT = C4 / kr, T = op->kh * op->kw;
    const int K32 = (op->k + 31) / 32 * 32;
    f->amx_kr = kr;
    f->wamx = calloc((size_t)K32 / 16 * T * KT * 1024, 1);
    if (!f->wamx) return; /* no tiles then: the VNNI kernel runs */
    for (int k = 0; k < op->k; k++)
        for (int c = 0; c < op->c; c++)
            for (int t = 0; t < T; t++) {
                int kb = c / 4 / kr, r = c / 4 % kr;
                size_t tile = ((size_t)(k / 16) * T + t) * KT + kb;
                f->wamx[tile * 1024 + (size_t)(k % 16) * 64 + r * 4 + c % 4] =
                    op->weight[((size_t)k * op->c + c) * T + t];
            }
}

/* Tile configuration (palette 1): 0-3 the int32 accumulators (16 x 64
 * bytes), 4-5 weights (16 x 4kr), 6-7 inputs (kr x 64). */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} AmxConfig;

static int amx_enable(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 25))) return 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0; /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return 0; /* XTILECFG and XTILEDATA enabled */
#ifdef SYS_arch_prctl
    /* Linux: ask for the tile data state (ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) */
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
#else
    return 0;
#endif
}

int qk_have_amx(void) {
    static int have = -1;
    if (have < 0) have = qk_have_vnni() && amx_enable();
    return have;
}

/* The tile convolution; pool: NULL, or a 2 x 2 max pool written to y
 * instead of the convolution's output. */
AMX_TARGET static void conv_amx(const QOp *op, const QOpFast *f, const QOp *pool, const int8_t *x, int8_t *y,
                                uint8_t *scratch) {
    const DirectDims d = direct_dims(op);
    const int C4 = (op->c + 3) / 4, OH = op->oh, OW = op->ow, S = d.s, kr = f->amx_kr, KT = C4 / kr;
    const int KH = op->kh, KW = op->kw, T = KH * KW;
    const size_t cstride = (size_t)S * S * d.plane * 4; /* bytes from one channel quad's planes to the next */
    uint8_t *xp = scratch, *tmp = xp + (size_t)C4 * d.s * d.s * d.plane * 4;
    int8_t *wy = (int8_t *)(tmp + 4 * (size_t)d.w16);
    int32_t *cb = (int32_t *)(((uintptr_t)(wy + 32 * (size_t)d.q32) + 63) & ~(uintptr_t)63);
    const size_t rs = (size_t)d.q32 + 64; /* the pool's int32 rows: one grid and slack for its last loads */
    int32_t *accp = (int32_t *)(((uintptr_t)(cb + 1024) + 63) & ~(uintptr_t)63);
    pad_regroup(op, x, xp, tmp, d);
    AmxConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = t >= 6 ? (uint8_t)kr : 16;
        cfg.colsb[t] = t == 4 || t == 5 ? (uint16_t)(4 * kr) : 64;
    }
    _tile_loadconfig(&cfg);
    for (int k0 = 0; k0 < op->k; k0 += 32) {
        const int nk = op->k - k0 < 32 ? op->k - k0 : 32;
        Rq16 rq[32];
        for (int j = 0; j < nk; j++) {
            int k = k0 + j;
            int32_t beff = (int32_t)((uint32_t)op->bias[k] - (uint32_t)(op->in_zp + 128) * (uint32_t)f->wsum[k]);
            rq[j] = rq16_make(beff, op->mult[k], op->shift[k], op->out_zp, op->act_min[k], op->act_max[k]);
        }
        const int8_t *w0 = f->wamx + (size_t)(k0 / 16) * T * KT * 1024, *w1 = w0 + (size_t)T * KT * 1024;
        for (int q0 = 0; q0 < d.q32; q0 += 32) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int i = 0; i < KH; i++)
                for (int j = 0; j < KW; j++)
                    for (int kb = 0; kb < KT; kb++) {
                        const uint8_t *b = xp + (((size_t)(kb * kr) * S + i % S) * S + j % S) * d.plane * 4 +
                                           ((size_t)q0 + (size_t)(i / S) * d.wp + j / S) * 4;
                        size_t wt = ((size_t)(i * KW + j) * KT + kb) * 1024;
                        _tile_loadd(6, b, cstride);
                        _tile_loadd(7, b + 64, cstride);
                        _tile_loadd(4, w0 + wt, 64);
                        _tile_dpbsud(0, 4, 6);
                        _tile_dpbsud(1, 4, 7);
                        _tile_loadd(5, w1 + wt, 64);
                        _tile_dpbsud(2, 5, 6);
                        _tile_dpbsud(3, 5, 7);
                    }
            if (pool) { /* raw accumulators for the pool: bias and requantization after the max */
                _tile_stored(0, accp + q0, rs * 4);
                _tile_stored(1, accp + q0 + 16, rs * 4);
                _tile_stored(2, accp + 16 * rs + q0, rs * 4);
                _tile_stored(3, accp + 16 * rs + q0 + 16, rs * 4);
                continue;
            }
            _tile_stored(0, cb, 64);
            _tile_stored(1, cb + 256, 64);
            _tile_stored(2, cb + 512, 64);
            _tile_stored(3, cb + 768, 64);
            for (int j = 0; j < nk; j++) {
                const int32_t *row = cb + (j / 16) * 512 + (j % 16) * 16;
                int8_t *dst = wy + (size_t)j * d.q32 + q0;
                _mm_storeu_si128((__m128i *)dst, rq16(_mm512_load_si512(row), &rq[j]));
                _mm_storeu_si128((__m128i *)(dst + 16), rq16(_mm512_load_si512(row + 256), &rq[j]));
            }
        }
        if (pool) {
            pool_requant(pool, accp, rs, d.wp, rq, nk, y + (size_t)k0 * pool->oh * pool->ow);
            continue;
        }
        store_valid_columns(y, wy, d, k0, nk, OH, OW);
    }
    _tile_release();
}

void qk_pack_amx_dense(const QOp *op, QOpFast *f) {
    const int K32 = (op->k + 31) / 32 * 32, KS = f->t4 / 64;
    f->wamxd = calloc((size_t)K32 / 16 * KS * 1024, 1);
    if (!f->wamxd) return; /* no tiles then: the VNNI kernel runs */
    for (int k = 0; k < op->k; k++)
        for (int t = 0; t < f->t; t++)
            f->wamxd[((size_t)(k / 16) * KS + t / 64) * 1024 + (size_t)(t % 64 / 4) * 64 + (k % 16) * 4 + t % 4] =
                op->weight[(size_t)k * f->t + t];
}

/* Dense over QK_GROUP images in tiles: A = the images' u8 inputs (one row
 * each, 64 taps per step), B = 64 taps x 16 outputs of weights, two
 * 16-output int32 tiles per pass; then each output's qref_requant. */
AMX_TARGET void qk_dense_amx_group(const QOp *op, const QOpFast *f, const int8_t *const *xs, int8_t *const *ys,
                                   uint8_t *scratch) {
    const size_t T4 = (size_t)f->t4;
    const int KS = f->t4 / 64;
    group_inputs(xs, f->t, T4, scratch);
    int32_t *cb = (int32_t *)(((uintptr_t)(scratch + QK_GROUP * T4) + 63) & ~(uintptr_t)63);
    AmxConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 5; t++) {
        cfg.rows[t] = t >= 3 ? 16 : QK_GROUP;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
    for (int k0 = 0; k0 < op->k; k0 += 32) {
        const int8_t *b0 = f->wamxd + (size_t)(k0 / 16) * KS * 1024, *b1 = b0 + (size_t)KS * 1024;
        _tile_zero(0);
        _tile_zero(1);
        for (int ks = 0; ks < KS; ks++) {
            _tile_loadd(2, scratch + (size_t)ks * 64, T4);
            _tile_loadd(3, b0 + (size_t)ks * 1024, 64);
            _tile_loadd(4, b1 + (size_t)ks * 1024, 64);
            _tile_dpbusd(0, 2, 3);
            _tile_dpbusd(1, 2, 4);
        }
        _tile_stored(0, cb, 128);
        _tile_stored(1, cb + 16, 128);
        for (int j = 0; j < 32 && k0 + j < op->k; j++) {
            int k = k0 + j;
            uint32_t beff = (uint32_t)op->bias[k] - (uint32_t)(op->in_zp + 128) * (uint32_t)f->wsum[k];
            for (int g = 0; g < QK_GROUP; g++)
                ys[g][k] = qref_requant((int32_t)((uint32_t)cb[g * 32 + j] + beff), op->mult[k], op->shift[k],
                                        op->out_zp, op->act_min[k], op->act_max[k]);
        }
    }
    _tile_release();
}

AMX_TARGET void qk_conv_amx(const QOp *op, const QOpFast *f, const int8_t *x, int8_t *y, uint8_t *scratch) {
    conv_amx(op, f, NULL, x, y, scratch);
}

AMX_TARGET void qk_conv_amx_maxpool(const QOp *op, const QOpFast *f, const QOp *pool, const int8_t *x, int8_t *y,
                                    uint8_t *scratch) {
    conv_amx(op, f, pool, x, y, scratch);
}

#else /* not x86-64 with GCC/Clang: no VNNI */

int qk_have_vnni(void) { return 0; }
int qk_have_amx(void) { return 0; }
int qk_have_vbmi(void) { return 0; }
void qk_pack_amx_dense(const QOp *op, QOpFast *f) { (void)op, (void)f; }
void qk_dense_amx_group(const QOp *op, const QOpFast *f, const int8_t *const *xs, int8_t *const *ys,
                        uint8_t *scratch) {
    (void)op, (void)f, (void)xs, (void)ys, (void)scratch;
}
void qk_dense_vnni_group(const QOp *op, const QOpFast *f, const int8_t *const *xs, int8_t *const *ys,
                         uint8_t *scratch) {
    (void)op, (void)f, (void)xs, (void)ys, (void)scratch;
}
void qk_lut_vbmi(const QOp *op, const int8_t *x, int8_t *y) { (void)op, (void)x, (void)y; }
void qk_avgpool2_vnni(const QOp *op, const int8_t *x, int8_t *y) { (void)op, (void)x, (void)y; }
void qk_maxpool2_vnni(const QOp *op, const int8_t *x, int8_t *y) { (void)op, (void)x, (void)y; }
int qk_conv_amx_ok(const QOp *op) { return 0; }
void qk_pack_amx(const QOp *op, QOpFast *f) { (void)op, (void)f; }
void qk_conv_amx(const QOp *op, const QOpFast *f, const int8_t *x, int8_t *y, uint8_t *scratch) {
    (void)op, (void)f, (void)x, (void)y, (void)scratch;
}
void qk_conv_amx_maxpool(const QOp *op, const QOpFast *f, const QOp *pool, const int8_t *x, int8_t *y,
                         uint8_t *scratch) {
    (void)op, (void)f, (void)pool, (void)x, (void)y, (void)scratch;
}
void qk_conv_vnni_maxpool(const QOp *op, const QOpFast *f, const QOp *pool, const int8_t *x, int8_t *y,
                          uint8_t *scratch) {
    (void)op, (void)f, (void)pool, (void)x, (void)y, (void)scratch;
}
size_t qk_vnni_scratch(const QOp *op, const QOpFast *f) { return 0; }
void qk_conv_vnni(const QOp *op, const QOpFast *f, const int8_t *x, int8_t *y, uint8_t *scratch) {
    (void)op, (void)f, (void)x, (void)y, (void)scratch;
}
void qk_dense_vnni(const QOp *op, const QOpFast *f, const int8_t *x, int8_t *y, uint8_t *scratch) {
    (void)op, (void)f, (void)x, (void)y, (void)scratch;
}

#endif
