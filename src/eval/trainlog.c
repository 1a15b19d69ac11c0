/* trainlog.c — the training log CSV reader; see trainlog.h. */
#include "eval/trainlog.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/util.h"

static const char *const HEADER = "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds";

void trainlog_free(TrainLog *log) {
    for (int c = 0; c < TRAINLOG_COLS; c++) free(log->col[c]);
    memset(log, 0, sizeof *log);
}

int trainlog_read(const char *path, TrainLog *log) {
    memset(log, 0, sizeof *log);
    char *text;
    size_t len;
    if (read_whole_file(path, 64u << 20, &text, &len) < 0) return -1;
    int rows = 0;
    for (size_t i = 0; i < len; i++) rows += text[i] == '\n';
    for (int c = 0; c < TRAINLOG_COLS; c++) log->col[c] = dg_xmalloc((size_t)(rows + 1) * sizeof(double));
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    int lineno = 1;
    if (!line) {
        free(text);
        trainlog_free(log);
        return dg_set_error("%s: empty file, expected the header '%s'", path, HEADER);
    }
    line[strcspn(line, "\r")] = '\0';
    if (strcmp(line, HEADER) != 0) {
        free(text);
        trainlog_free(log);
        return dg_set_error("%s:1: header is not '%s' (not a digits training log)", path, HEADER);
    }
    while ((line = strtok_r(NULL, "\n", &save))) {
        lineno++;
        line[strcspn(line, "\r")] = '\0';
        if (!*line) continue;
        char *p = line;
        for (int c = 0; c < TRAINLOG_COLS; c++) {
            char *end;
            double v = strtod(p, &end); /* accepts "nan" and "-nan" */
            if (end == p || (*end != ',' && *end != '\0') || (c < TRAINLOG_COLS - 1 && *end != ',')) {
                free(text);
                trainlog_free(log);
                return dg_set_error("%s:%d: column %d is not a number or the row is short", path, lineno, c + 1);
            }
            log->col[c][log->n] = isnan(v) ? NAN : v;
            p = end + (*end == ',');
        }
        if (*p) {
            free(text);
            trainlog_free(log);
            return dg_set_error("%s:%d: more than %d columns", path, lineno, TRAINLOG_COLS);
        }
        log->n++;
    }
    free(text);
    if (log->n == 0) {
        trainlog_free(log);
        return dg_set_error("%s: no epochs logged", path);
    }
    return 0;
}

int trainlog_best(const TrainLog *log) {
    int best = -1;
    for (int i = 0; i < log->n; i++)
        if (isfinite(log->col[TL_VAL_LOSS][i]) && (best < 0 || log->col[TL_VAL_LOSS][i] < log->col[TL_VAL_LOSS][best]))
            best = i;
    return best;
}
