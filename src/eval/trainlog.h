/* trainlog.h — reads the per-epoch CSV that `digits train --log` writes
 * (src/train/train.c):
 *     epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds
 * Validation columns are "nan" when training had no validation split. */
#ifndef DG_TRAINLOG_H
#define DG_TRAINLOG_H

#define TRAINLOG_COLS 7

typedef struct {
    int n;                    /* epochs (rows) */
    double *col[TRAINLOG_COLS]; /* each (n), in the header's order */
} TrainLog;

enum { TL_EPOCH, TL_TRAIN_LOSS, TL_TRAIN_ACC, TL_VAL_LOSS, TL_VAL_ACC, TL_LR, TL_SECONDS };

/* -1 with "path:line: problem" on a missing file, a wrong header, a short
 * row or a non-number; an empty log (header only) is an error too. */
int trainlog_read(const char *path, TrainLog *log);
void trainlog_free(TrainLog *log);
/* 0-based row of the lowest validation loss, -1 if there is none. */
int trainlog_best(const TrainLog *log);

#endif
