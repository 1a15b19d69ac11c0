/* cmd_train_mpi.h — `digits train` under mpirun (cmd_train_mpi.c): the
 * start-up checks across ranks and leaving the job. */
#ifndef DG_APP_TRAIN_MPI_H
#define DG_APP_TRAIN_MPI_H

#include "digits.h"
#include "digits_internal.h"
#include "train/train.h"

/* Join the job (dist_init; nothing without mpirun) and check that every
 * rank runs the same binary with the same arguments: rank 0 broadcasts
 * their hashes; a rank that differs prints one line naming itself and
 * every rank exits 1 before any data is read. Ranks > 0 print nothing on
 * stdout from here on. */
void train_mpi_start(int argc, char **argv);
/* After the settings are parsed: the effective settings (flags, --config
 * file and defaults, as --print-config writes them, --dist-mode included)
 * must hash as rank 0's, else a line from each rank that differs and
 * every rank exits 1 (catches config files that differ between hosts). */
void train_mpi_check_settings(const dg_train_config *cfg);
/* After the data are loaded: every rank's training and validation images
 * must hash as rank 0's (else a line from each rank that differs, and
 * every rank exits 1 before step 1). */
void train_mpi_check_data(const Dataset *train, const Dataset *val);
/* Leave the job (MPI_Finalize) after a successful run. */
void train_mpi_end(void);

#endif
