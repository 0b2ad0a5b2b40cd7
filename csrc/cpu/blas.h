// Double-precision BLAS and LAPACK routines, injected by the caller.
// The core does not link a BLAS: the Python layer hands over the Fortran `dgemm`, `dtrsm`,
// `dsyrk` and `dpotrf` symbols of the BLAS SciPy was built with (scipy.linalg.cython_blas and
// cython_lapack), so the exemplar SVMs' Cholesky factors (and their Gram rows on CPUs without
// AVX-512: cpu/gram.h computes them elsewhere) use the same tuned routines as NumPy/SciPy with
// no build-time dependency. When none is given, portable fallbacks keep the core usable (and
// testable) on its own. Float32 scores never go through BLAS: they come from our own
// micro-kernel (cpu/scores.h), which rounds a product the same way wherever it sits.
#pragma once
#include <cstdint>

namespace simattr {

// Fortran BLAS dgemm: C = alpha * op(A) * op(B) + beta * C, column-major.
using DgemmFn = void (*)(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                         const double* alpha, const double* a, const int* lda, const double* b,
                         const int* ldb, const double* beta, double* c, const int* ldc);

// LAPACK Cholesky factorisation (Fortran dpotrf).
using DpotrfFn = void (*)(const char* uplo, const int* n, double* a, const int* lda, int* info);

// Fortran BLAS dtrsm: B = alpha * op(A)^-1 B (side "L") or alpha * B op(A)^-1 (side "R"),
// A triangular, column-major.
using DtrsmFn = void (*)(const char* side, const char* uplo, const char* transa, const char* diag,
                         const int* m, const int* n, const double* alpha, const double* a, const int* lda,
                         double* b, const int* ldb);

// Fortran BLAS dsyrk: C = alpha * A A^T + beta * C (trans "N"), one triangle of C, column-major.
using DsyrkFn = void (*)(const char* uplo, const char* trans, const int* n, const int* k, const double* alpha,
                         const double* a, const int* lda, const double* beta, double* c, const int* ldc);

// The BLAS / LAPACK routines the caller injects (any may be null: portable fallbacks are used).
struct Blas {
    DgemmFn dgemm = nullptr;
    DpotrfFn dpotrf = nullptr;
    DtrsmFn dtrsm = nullptr;  // with dsyrk and dpotrf: GrowingCholesky::append_block
    DsyrkFn dsyrk = nullptr;
};

// Gram matrix of augmented rows, K[i, j] = x_i . x_j + B^2, for row-major x [l, d] (double)
// and K [l, l] row-major: fills rows row0..l (all columns) and mirrors them into columns
// row0..l, so a K whose leading row0 x row0 block is already right is extended to l. Only
// the lower triangle is computed (the new rows' diagonal block recursively, in halves).
// Single-threaded (called from inside parallel loops).
void gram_aug(DgemmFn dgemm, const double* x, int64_t l, int64_t d, int64_t row0, double B, double* K);

}  // namespace simattr
