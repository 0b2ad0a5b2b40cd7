#include "cpu/blas.h"

#include <algorithm>

namespace simattr {

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
