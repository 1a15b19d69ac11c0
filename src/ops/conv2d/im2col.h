/* conv2d/im2col.h — im2col and col2im; see conv2d/im2col.c. Internal to
 * src/ops. x is one image (C,H,W); col is (C*R*S, columns) with row
 * stride ld, row (c,r,s) and column (p,q) as in conv2d/im2col.c. */
#ifndef DG_CONV2D_IM2COL_H
#define DG_CONV2D_IM2COL_H

#include <stddef.h>

#include "ops/conv2d/plan.h"

/* Output rows [pb, pe) as a (CRS, (pe-pb)*Q) matrix, rows one after another. */
void conv_im2col_band(float *col, const float *x, const ConvShape *s, int pb, int pe);
/* The whole image (all P rows) with row stride ld: by gathers when a
 * table is given (conv_gather_table), else row by row. */
void conv_im2col_image(float *col, size_t ld, const float *x, const int *table, const ConvShape *s);
/* ... by gathers only (table not NULL). */
void conv_im2col_gather(float *col, size_t ld, const float *x, const int *table, const ConvShape *s);

/* x += the entries of col landing on each pixel (the adjoint of im2col);
 * the caller zeroes x first. col is scratch: its padded entries may be
 * overwritten. Output rows [pb, pe), rows of (pe-pb)*Q floats; or the
 * whole image with row stride ld. */
void conv_col2im_band(float *x, float *col, const ConvShape *s, int pb, int pe);
void conv_col2im_image(float *x, float *col, size_t ld, const ConvShape *s);

/* Does im2col of this shape go faster by gathers (AVX-512; small or
 * strided outputs)? */
int conv_use_gather(const ConvShape *s);
/* The gather table of a shape: (R*S, PQ rounded up to 16) plane offsets,
 * -1 for padding. Built once per shape and kept for the process (32
 * shapes; past that *owned is set and the caller frees it). Read-only,
 * shared by all threads. */
int *conv_gather_table(const ConvShape *s, int *owned);

#endif
