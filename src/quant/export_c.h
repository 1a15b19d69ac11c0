/* export_c.h — `digits export --format c`: an int8 model (src/quant/qmodel.h)
 * as dependency-free C99 source for a microcontroller: DIR/digits_model.c
 * (qref.h verbatim, the weights as const arrays, one static activation
 * arena, the entry point) and DIR/digits_model.h (the entry point and the
 * flash and RAM the model needs). Left out on purpose: ensembles (their
 * vote needs floating point), float models (quantize them first). */
#ifndef DG_EXPORT_C_H
#define DG_EXPORT_C_H

#include <stddef.h>

#include "quant/qmodel.h"

/* What an exported model needs on a 32-bit target. */
typedef struct {
    size_t flash_bytes; /* constants: weights, biases, requantization tables, the operator table */
    size_t ram_bytes;   /* the static activation arena */
} QExportSize;

/* The activation arena of q for a run that keeps only live tensors: off[0]
 * is the input image's byte offset, off[1 + i] op i's output's; returns the
 * arena's size. Tensors alive at the same time never overlap (an op's
 * output never overlaps its inputs, but for a table lookup whose input dies
 * with it: it runs in place); first fit, 4-byte aligned. off has
 * n_ops + 1 entries, the caller's. */
size_t qexport_plan_arena(const QModel *q, size_t *off);

/* The flash and RAM q needs as exported C (no files written). */
QExportSize qexport_size(const QModel *q);

/* Write dir/digits_model.c and dir/digits_model.h (atomically; dir is
 * created) for q, read from `origin` (named in the files' comments).
 * max_flash, max_ram: limits in bytes (0: none); a model over one writes
 * nothing. Fills *size (may be NULL). -1 with "origin: problem" (or
 * "path: problem") in dg_errmsg(). */
int qexport_c(const QModel *q, const char *dir, const char *origin, size_t max_flash, size_t max_ram,
              QExportSize *size);

#endif
