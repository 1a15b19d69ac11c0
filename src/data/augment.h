/* augment.h — on-the-fly data augmentation of uint8 images: random affine
 * (rotation, translation, zoom, shear), perspective distortion and elastic
 * distortion, composed into ONE inverse mapping per sample and resampled
 * bilinearly, the border filled with background (0).
 *
 * Coordinates are continuous with pixel (i, j) centred at (j+0.5, i+0.5),
 * as torchvision and PIL use them; a warp maps an OUTPUT point to the
 * INPUT point it samples. The affine part is, for the forward map,
 *     p_out = c + t + R(angle) Sh(shear) Z(zoom) (p_in - c),  c the centre,
 * and the perspective part a homography; both compose into one 3x3 matrix.
 * Elastic distortion (Simard, Steinkraus & Platt 2003) displaces the output
 * points first by a smoothed random field:  p_in = H (q + d(q)).
 *
 * Randomness: every sample draws from its own Rng, seeded from
 * (seed, epoch, sample index) through the stream rng_seed(seed, "augment"),
 * so a batch is the same whatever the thread count and whatever else is in
 * the batch. Nothing is stored: each epoch sees fresh versions.
 *
 * Text form (the --augment flag), comma-separated key=value:
 *   rotate=DEG        angle ~ U(-DEG, DEG)
 *   shift=F           translation ~ U(-F, F) * side, per axis
 *   intshift=1        round translations to whole pixels (torchvision)
 *   zoom=Z            isotropic scale ~ U(1-Z, 1+Z) of the image (torchvision scale)
 *   zoomxy=Z          x and y factors ~ U(1-Z, 1+Z) each, on the inverse map (Keras zoom_range)
 *   shear=DEG         x-shear angle ~ U(-DEG, DEG)
 *   perspective=D:P   torchvision RandomPerspective(distortion_scale=D, p=P)
 *   elastic=A:S[:P]   Simard: field U(-1,1) per pixel, Gaussian of sigma S
 *                     pixels, times A pixels; with probability P (1)
 * or a preset name: seed000, seed002 (Keras: rotation 10, zoom 0.1, shift
 * 0.1), seed003 (RandomAffine(10, translate 0.1, scale 0.9-1.1) +
 * RandomPerspective(0.1, 0.25)), mnist (seed000 + mild elastic), none.
 */
#ifndef DG_AUGMENT_H
#define DG_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

typedef struct {
    float rotate;        /* degrees */
    float shift;         /* fraction of the side */
    int intshift;        /* round translations to whole pixels */
    float zoom;          /* isotropic, forward map */
    float zoomxy;        /* anisotropic, inverse map (Keras) */
    float shear;         /* degrees, x-shear */
    float persp_scale;   /* RandomPerspective distortion_scale (0 = off) */
    float persp_p;       /* ... and probability */
    float elastic_alpha; /* pixels (0 = off) */
    float elastic_sigma; /* pixels */
    float elastic_p;     /* probability */
    char text[192];      /* canonical text form (model-file metadata, logs) */
} AugmentConfig;

/* Parse a preset name or "key=value,..." into cfg; -1 with a one-line
 * message ("--augment: unknown key 'rotation' (known: ...)"). */
int augment_parse(const char *text, AugmentConfig *cfg);
/* 1 if cfg changes nothing (every range 0). */
int augment_is_identity(const AugmentConfig *cfg);

/* Draw one sample's warp: H (3x3 row-major, output -> input continuous
 * coordinates) and, when elastic distortion fires, the displacement field
 * disp (2, rows, cols) (x then y components, pixels); *has_disp says
 * whether it did. work: 2*rows*cols floats of scratch. */
void augment_draw(const AugmentConfig *cfg, Rng *rng, int rows, int cols, double H[9],
                  float *disp, int *has_disp, float *work);

/* The inverse of the forward affine map described in the file comment, as
 * a homography (output -> input). Angles in degrees; sx, sy scale factors
 * of the image; tx, ty pixels. */
void augment_affine(double H[9], int rows, int cols, double angle, double shear, double sx,
                    double sy, double tx, double ty);

/* dst (rows, cols) = src sampled bilinearly at H(q + disp(q)) for every
 * output pixel centre q; outside the image counts as 0; rounded to the
 * nearest integer. disp may be NULL. dst and src must not overlap. */
void augment_warp_u8(uint8_t *dst, const uint8_t *src, int rows, int cols, const double H[9],
                     const float *disp);

/* Augment n images (n, rows, cols) in place. ids[i] is image i's index in
 * its data set: with (seed, epoch) it seeds that image's draw. OpenMP over
 * the images; the result does not depend on the thread count. */
void augment_batch(const AugmentConfig *cfg, uint64_t seed, int epoch, const int *ids,
                   uint8_t *pixels, int n, int rows, int cols);

/* Test-time augmentation: the k-th of a fixed family of mild warps
 * (k = 0 is the identity; the others rotate up to 8 degrees, shift up to
 * 1.5 pixels and zoom up to 6 %, drawn from a fixed seed), as H. */
void augment_tta_warp(int k, int rows, int cols, double H[9]);

#endif
