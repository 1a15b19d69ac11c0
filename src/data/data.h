/* data.h — data sets in memory and the readers/writers that fill them.
 *
 * A Dataset is n grayscale images of rows x cols uint8 pixels (0 =
 * background, 255 = ink, the MNIST convention) and optional labels 0..9.
 * Readers never trust sizes in a file: dimensions and counts are bounded
 * and checked against the file size before anything is allocated.
 *
 * All readers return 0 on success and -1 on failure with a one-line message
 * in dg_errmsg() that names the file (and line/column where it applies)
 * and the problem, e.g.
 *   "data/x.csv:17: expected 785 columns, found 784"
 *   "data/t10k-images-idx3-ubyte: truncated: header says 10000 images of 28x28 (7840016 bytes), file has 1000 bytes"
 */
#ifndef DG_DATA_H
#define DG_DATA_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int n;            /* number of images */
    int rows, cols;   /* 28 x 28 for MNIST */
    uint8_t *pixels;  /* (n, rows*cols), owned */
    uint8_t *labels;  /* (n) in 0..9, owned; NULL when unlabelled (Kaggle test.csv) */
} Dataset;

#define DATA_MAX_IMAGES 10000000   /* sanity bounds checked before allocating */
#define DATA_MAX_SIDE 4096

void dataset_free(Dataset *ds);   /* frees the arrays, zeroes the struct; safe on a zeroed struct */

/* ---- IDX (LeCun's MNIST format), raw or gzip-compressed -------------------
 * Images: magic 0x00000803, n, rows, cols (big-endian), then n*rows*cols bytes.
 * Labels: magic 0x00000801, n, then n bytes (each must be 0..9).
 * gzip is detected by content (1f 8b), not by file name; read through zlib. */
int idx_read_images(const char *path, Dataset *ds);            /* fills n, rows, cols, pixels */
int idx_read_labels(const char *path, uint8_t **labels, int *n);
int idx_write_images(const char *path, const Dataset *ds);      /* raw (uncompressed) */
int idx_write_labels(const char *path, const uint8_t *labels, int n);
/* Both files; checks the counts agree ("image/label count mismatch: ..."). */
int idx_read_pair(const char *images_path, const char *labels_path, Dataset *ds);

/* ---- Kaggle CSV --------------------------------------------------------------
 * train.csv: header "label,pixel0,...,pixel783", rows label,p0..p783.
 * test.csv:  header "pixel0,...,pixel783", rows p0..p783 (labels = NULL).
 * Which one it is comes from the header's first cell ("label" or "pixel0").
 * Images are square: the pixel count must be a perfect square (784 -> 28x28).
 * Every cell must be an integer; pixels 0..255, labels 0..9. CRLF accepted. */
int csv_read(const char *path, Dataset *ds);
/* Writes train.csv layout if ds->labels, else test.csv layout. */
int csv_write(const char *path, const Dataset *ds);
/* submission.csv: "ImageId,Label" then i+1,pred[i] for i in 0..n-1;
 * written atomically (temp file, fsync, rename). */
int csv_write_submission(const char *path, const uint8_t *pred, int n);

/* ---- Loading by path ----------------------------------------------------------
 * path is a folder holding MNIST IDX files, or a .csv file.
 * For a folder, split is "train" or "test" and picks
 *   {train,t10k}-images-idx3-ubyte[.gz] and {train,t10k}-labels-idx1-ubyte[.gz]
 * (also accepts the dotted names train-images.idx3-ubyte).
 * For a .csv, split is ignored.                                                 */
int dataset_load(const char *path, const char *split, Dataset *ds);

/* ---- Single images (PNG via libpng, JPEG via libjpeg, BMP, PGM P5/P2) -----------
 * Decodes to 8-bit grayscale (alpha composited on white), owned *pixels. The
 * format comes from the first bytes. Dimensions are checked against
 * DATA_MAX_SIDE from the header, before any pixel is decoded.                 */
int image_read_gray(const char *path, uint8_t **pixels, int *width, int *height);

/* Why image_decode_gray failed, for callers that answer differently (the
 * server: 400, 415, 413). */
typedef enum {
    IMAGE_OK = 0,
    IMAGE_BAD,          /* corrupt or truncated data in a format we read */
    IMAGE_UNSUPPORTED,  /* not PNG/JPEG/BMP/PGM, or an unsupported variant (RLE BMP, P6) */
    IMAGE_TOO_LARGE,    /* the header claims more than DATA_MAX_SIDE per side */
} ImageStatus;
/* The same from a buffer; `name` labels messages ("upload.png"). *status
 * (may be NULL) says why on failure. Returns 0 or -1 with dg_errmsg(). */
int image_decode_gray(const uint8_t *data, size_t len, const char *name, uint8_t **pixels,
                      int *width, int *height, ImageStatus *status);
/* The same in gray (channels 1) or RGB (3, interleaved), for the photo
 * preprocessing that separates coloured ink from tinted paper. Both apply a
 * JPEG's EXIF orientation (also image_read_gray/image_decode_gray do). */
int image_decode(const uint8_t *data, size_t len, const char *name, int channels, uint8_t **pixels,
                 int *width, int *height, ImageStatus *status);
int image_read(const char *path, int channels, uint8_t **pixels, int *width, int *height);
/* Writes an 8-bit grayscale PNG. */
int image_write_png_gray(const char *path, const uint8_t *pixels, int width, int height);

/* ---- Splits ---------------------------------------------------------------------
 * Stratified split: for each class, a seeded shuffle of its indices, the first
 * round(frac * class_count) go to validation. Outputs index arrays (owned,
 * caller frees), each sorted ascending. Deterministic for a given seed.          */
void split_stratified(const uint8_t *labels, int n, float val_frac, uint64_t seed,
                      int **train_idx, int *n_train, int **val_idx, int *n_val);
/* Stratified K-fold: fold_of[i] in 0..k-1 for each sample (owned). */
void split_kfold(const uint8_t *labels, int n, int k, uint64_t seed, int **fold_of);
/* A new dataset with the chosen rows (copies). */
void dataset_subset(Dataset *out, const Dataset *ds, const int *idx, int n);
/* Per-pixel mean and std of all pixels scaled to [0,1]. */
void dataset_mean_std(const Dataset *ds, float *mean, float *std);

#endif
