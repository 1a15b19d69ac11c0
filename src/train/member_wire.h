/* member_wire.h — an ensemble member's outcome as bytes, so that a member
 * trained by another MPI rank joins rank 0's ensemble exactly as if rank 0
 * had trained it: the weights (parameters and buffers, float32 bit for
 * bit), the spec, the normalisation, the train_config and metrics JSON the
 * ensemble file records, and the figures ensemble_train keeps (its
 * TrainResult, validation accuracy, out-of-fold hits). A rank that failed
 * or was stopped sends the same record without a model: its status, the
 * error, the checkpoint it wrote.
 *
 * Layout: "DGMEMB01", fixed fields, then length-prefixed strings and the
 * float blocks. The TrainResult travels as its bytes: every rank runs the
 * same binary (the MPI start-up checks that), and the record never goes to
 * disk. Left out on purpose: optimiser state (a finished member has no use
 * for it) and any compression.
 */
#ifndef DG_MEMBER_WIRE_H
#define DG_MEMBER_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "train/train.h"

/* A report's status for a member stopped by the run's own stop flag (the
 * library API's; tr.interrupted is -1 then). */
#define MEMBER_STOPPED_BY_FLAG (-2)

/* What a rank reports about one member. */
typedef struct {
    int member;         /* 0-based member index; -1: this rank had none */
    int status;         /* 0 trained; -1 failed (error); > 0 stopped by that signal;
                         * MEMBER_STOPPED_BY_FLAG: stopped by the run's stop flag (cfg->stop) */
    TrainResult tr;     /* the member's training figures */
    double val_acc;     /* on its validation set (fold); NAN if none */
    long oof_correct;   /* K-fold: its fold's images it got right */
    int stop_requested; /* the signal this rank was asked to stop by after training (-1: the stop flag; 0: none) */
    char error[512];    /* status -1: the one-line message */
} MemberReport;

/* The report plus, when status is 0, model m, as one malloc'd buffer of
 * *len bytes (owned by the caller). */
uint8_t *member_pack(const MemberReport *r, const Model *m, size_t *len);
/* Read a packed report back into r and, when it carries a model, build m
 * from its spec and fill in weights, normalisation and JSON (m owned by the
 * caller: model_free). Returns 1 with a model, 0 without, -1 on a damaged
 * record (dg_errmsg). */
int member_unpack(const uint8_t *buf, size_t len, MemberReport *r, Model *m);

#endif
