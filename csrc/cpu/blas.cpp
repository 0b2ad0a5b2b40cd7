#include "cpu/blas.h"

#include <algorithm>

#include "common/parallel.h"

namespace simattr {

namespace {
// Portable fallback: cache-blocked, vectorisable inner loop over d.
void gemm_abt_fallback(const float* a, int64_t lda, const float* b, int64_t ldb, float* out, int64_t ldo,
                       int64_t m, int64_t n, int64_t d) {
    constexpr int64_t kTile = 64;
    for (int64_t i0 = 0; i0 < m; i0 += kTile) {
        const int64_t i1 = std::min(m, i0 + kTile);
        for (int64_t j0 = 0; j0 < n; j0 += kTile) {
            const int64_t j1 = std::min(n, j0 + kTile);
            for (int64_t i = i0; i < i1; ++i) {
                const float* ai = a + i * lda;
                for (int64_t j = j0; j < j1; ++j) {
                    const float* bj = b + j * ldb;
                    float s = 0.f;
#pragma omp simd reduction(+ : s)
                    for (int64_t c = 0; c < d; ++c) s += ai[c] * bj[c];
                    out[i * ldo + j] = s;
                }
            }
        }
    }
}
}  // namespace

namespace {
void gemm_abt_serial(SgemmFn sgemm, const float* a, int64_t lda, const float* b, int64_t ldb, float* out,
                     int64_t ldo, int64_t m, int64_t n, int64_t d) {
    if (m == 0 || n == 0) return;
    if (sgemm == nullptr || d == 0) {
        if (d == 0) {
            for (int64_t i = 0; i < m; ++i) std::fill(out + i * ldo, out + i * ldo + n, 0.f);
            return;
        }
        gemm_abt_fallback(a, lda, b, ldb, out, ldo, m, n, d);
        return;
    }
    // Row-major out[m, n] = A B^T is column-major out^T[n, m] = B A^T:
    // column-major B is [d, n] (ld = ldb) used transposed, A is [d, m] (ld = lda) as is.
    const int M = static_cast<int>(n), N = static_cast<int>(m), K = static_cast<int>(d);
    const int LDA = static_cast<int>(ldb), LDB = static_cast<int>(lda), LDC = static_cast<int>(ldo);
    const float one = 1.f, zero = 0.f;
    sgemm("T", "N", &M, &N, &K, &one, b, &LDA, a, &LDB, &zero, out, &LDC);
}
}  // namespace

void gemm_abt(SgemmFn sgemm, const float* a, int64_t lda, const float* b, int64_t ldb, float* out,
              int64_t ldo, int64_t m, int64_t n, int64_t d, int n_threads) {
    // Column panels of a fixed width, whatever the thread count: BLAS rounds a product
    // according to where it sits in the matrix it is given, so panels that depended on the
    // number of threads would make the results depend on it too (the exemplar SVMs' decision
    // values steer their solver). 256 columns keep each panel's GEMM efficient.
    constexpr int64_t kPanel = 256;
    const int64_t parts = (n + kPanel - 1) / kPanel;
    parallel_for(parts, resolve_threads(n_threads), [&](int64_t p) {
        const int64_t j0 = p * kPanel, j1 = std::min(n, j0 + kPanel);
        gemm_abt_serial(sgemm, a, lda, b + j0 * ldb, ldb, out + j0, ldo, m, j1 - j0, d);
    });
}

namespace {

// K[i, j] = x_i . x_j for rows i0..i1 and columns j0..j1 (row-major K [l, l], x [l, d]).
void gram_block(DgemmFn dgemm, const double* x, int64_t l, int64_t d, int64_t i0, int64_t i1, int64_t j0,
                int64_t j1, double* K) {
    if (i1 <= i0 || j1 <= j0) return;
    if (dgemm != nullptr && d > 0) {
        // Row-major block = X_rows X_cols^T is column-major block^T = (X_cols^T)^T X_rows^T.
        const int M = int(j1 - j0), N = int(i1 - i0), D = int(d), L = int(l);
        const double one = 1.0, zero = 0.0;
        dgemm("T", "N", &M, &N, &D, &one, x + j0 * d, &D, x + i0 * d, &D, &zero, K + i0 * l + j0, &L);
        return;
    }
    for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = j0; j < j1; ++j) {
            double s = 0.0;
            for (int64_t c = 0; c < d; ++c) s += x[i * d + c] * x[j * d + c];
            K[i * l + j] = s;
        }
}

// The lower triangle (diagonal included) of rows and columns i0..i1, split in halves until
// small: the strictly upper part of a square block is never computed, which on a block of
// new rows halves the work of one GEMM over it.
void gram_lower(DgemmFn dgemm, const double* x, int64_t l, int64_t d, int64_t i0, int64_t i1, double* K) {
    constexpr int64_t kLeaf = 64;
    if (i1 - i0 <= kLeaf) {
        gram_block(dgemm, x, l, d, i0, i1, i0, i1, K);
        return;
    }
    const int64_t mid = i0 + (i1 - i0) / 2;
    gram_lower(dgemm, x, l, d, i0, mid, K);
    gram_block(dgemm, x, l, d, mid, i1, i0, mid, K);
    gram_lower(dgemm, x, l, d, mid, i1, K);
}

}  // namespace

void gram_aug(DgemmFn dgemm, const double* x, int64_t l, int64_t d, int64_t row0, double B, double* K) {
    if (l <= row0) return;
    // The new rows against the kept ones, then the lower triangle of new against new; every
    // entry is then mirrored above the diagonal, so K is exactly symmetric.
    gram_block(dgemm, x, l, d, row0, l, 0, row0, K);
    gram_lower(dgemm, x, l, d, row0, l, K);
    const double b2 = B * B;
    for (int64_t i = row0; i < l; ++i)
        for (int64_t j = 0; j <= i; ++j) {
            K[i * l + j] += b2;
            K[j * l + i] = K[i * l + j];
        }
}

}  // namespace simattr
