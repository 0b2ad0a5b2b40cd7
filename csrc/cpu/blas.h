// Single-precision GEMM, injected by the caller.
// The core does not link a BLAS: the Python layer hands over the Fortran `sgemm` symbol
// of the BLAS SciPy was built with (scipy.linalg.cython_blas), so we use the same tuned,
// threaded GEMM as NumPy/SciPy with no build-time dependency. When none is given, a
// portable blocked fallback keeps the core usable (and testable) on its own.
#pragma once
#include <cstdint>

namespace simattr {

// Fortran BLAS sgemm: C = alpha * op(A) * op(B) + beta * C, column-major.
using SgemmFn = void (*)(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                         const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                         const float* beta, float* c, const int* ldc);

// Fortran BLAS dgemm, same argument order in double precision.
using DgemmFn = void (*)(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                         const double* alpha, const double* a, const int* lda, const double* b,
                         const int* ldb, const double* beta, double* c, const int* ldc);

// LAPACK Cholesky factorisation (Fortran dpotrf).
using DpotrfFn = void (*)(const char* uplo, const int* n, double* a, const int* lda, int* info);

// The BLAS / LAPACK routines the caller injects (any may be null: portable fallbacks are used).
struct Blas {
    SgemmFn sgemm = nullptr;
    DgemmFn dgemm = nullptr;
    DpotrfFn dpotrf = nullptr;
};

// Gram matrix of augmented rows, K[i, j] = x_i . x_j + B^2, for row-major x [l, d] (double)
// and K [l, l] row-major: fills rows row0..l (all columns) and mirrors them into columns
// row0..l, so a K whose leading row0 x row0 block is already right is extended to l. Only
// the lower triangle is computed (the new rows' diagonal block recursively, in halves).
// Single-threaded (called from inside parallel loops).
void gram_aug(DgemmFn dgemm, const double* x, int64_t l, int64_t d, int64_t row0, double B, double* K);

// Computes out[i, j] = sum_c a[i, c] * b[j, c]  (out = A B^T) for row-major
// A [m, d] (row stride lda), B [n, d] (row stride ldb), out [m, n] (row stride ldo).
// The columns are split over n_threads threads (<= 0: all), each calling sgemm on its
// share; the caller keeps the BLAS library itself single-threaded, so that BLAS worker
// threads never spin against the core's own threads.
void gemm_abt(SgemmFn sgemm, const float* a, int64_t lda, const float* b, int64_t ldb, float* out,
              int64_t ldo, int64_t m, int64_t n, int64_t d, int n_threads);

}  // namespace simattr
