/* runtime.h — process-level tuning that must happen before the OpenMP and
 * OpenBLAS runtimes read their environment (they read it once, when they
 * load, so setenv() later is ignored — measured: OpenBLAS kept its
 * "Haswell" kernels after setenv("OPENBLAS_CORETYPE")).
 *
 * dg_runtime_init(argv), called first thing in main(), fills in what the
 * user has not set and re-executes the program once so that it takes effect:
 *   OPENBLAS_CORETYPE=Cooperlake (AVX512_BF16) or SkylakeX (AVX-512):
 *       Debian's OpenBLAS 0.3.21 falls back to Haswell kernels on this CPU;
 *       Cooperlake ran cnn-bn training 1.2x faster here.
 *   (not OPENBLAS_NUM_THREADS=1: with it, concurrent single-threaded sgemm
 *   calls from digits' threads were 1.5x slower here.)
 *   GOMP_SPINCOUNT=10000: idle OpenMP threads spin briefly, then sleep.
 *       libgomp's default long spin made a batch-1 cnn-bn forward 10x
 *       slower on this 2-vCPU machine; passive waiting cost 25 % of lenet5
 *       training throughput; 10000 kept both (bench/README.md).
 * OPENBLAS_CORETYPE is always digits' choice (this machine's environment
 * exports OPENBLAS_CORETYPE=Haswell); DIGITS_BLAS_CORETYPE=NAME overrides it.
 * GOMP_SPINCOUNT set by the user is kept. DIGITS_NO_REEXEC=1 disables all this.
 *
 * It also flushes subnormal floats to zero (MXCSR FTZ + DAZ) in the process
 * and the threads it starts, as TensorFlow does on CPU: twobranch trained
 * with Adam and weight decay had 37 % subnormal weights after three epochs,
 * and its epochs slowed from 301 to 728 s on an Intel Xeon, where every
 * operation on a subnormal takes a slow microcode path. Results change only
 * where a value would be below 1.2e-38. DIGITS_DENORMALS=keep keeps them
 * (PyTorch's default; torch.set_flush_denormal(True) is the flushing one).
 */
#ifndef DG_RUNTIME_H
#define DG_RUNTIME_H

void dg_runtime_init(char **argv);

#endif
