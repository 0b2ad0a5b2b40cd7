// A Cholesky factor that follows a changing active set: rows and columns are appended (one
// at a time in O(n^2) each, or k at once in O(n^2 k) with BLAS-3) or deleted (a rank-one
// update of the trailing block, O(n^2)) without refactoring, so an active-set Newton method
// pays O(n^2) per change instead of O(n^3).
//
// Layout: L is lower triangular, column-major with leading dimension ld (the capacity),
// L L^T = M for the current n x n SPD matrix M: LAPACK's dpotrf("L") factors it in place, and
// the inner loops of the solves and of a deletion's rotations run down contiguous columns.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/blas.h"
#include "cpu/buffer_pool.h"

namespace simattr {

class GrowingCholesky {
public:
    // Room for up to `capacity` rows; resets to the empty factor.
    void reset(int64_t capacity);
    // Where the factor's storage comes from (and goes back to) from now on: pool, or new[]
    // when null. The current storage is released first (the factor is emptied).
    void set_pool(BufferPool* pool);
    int64_t size() const { return n_; }

    // Factors M [n, n] (symmetric, row-major, stride n; only the upper triangle, diagonal
    // included, is read) from scratch, with LAPACK's blocked dpotrf when blas has it.
    // Returns false when M is not numerically SPD.
    bool factor(const Blas& blas, const double* M, int64_t n);
    // Appends one row and column: m [n] its off-diagonal entries against the current rows (in
    // order), diag its diagonal entry. Returns false (factor unchanged) when the extended
    // matrix is not numerically SPD.
    bool append(const double* m, double diag);
    // Appends k rows and columns at once: Mon [k, n] (row-major) their entries against the
    // current rows (in order), Mnn [k, k] (row-major, symmetric; the upper triangle is read)
    // their block. The new rows of L solve L21 L^T = Mon (dtrsm) and the trailing block
    // factors Mnn - L21 L21^T (dsyrk, dpotrf; loops where blas lacks them): with n rows
    // already factored, n^3 / 3 fewer flops than refactoring, always. Returns false (factor
    // unchanged) when the extended matrix is not numerically SPD.
    bool append_block(const Blas& blas, const double* Mon, const double* Mnn, int64_t k);
    // Deletes rows and columns js[0] < js[1] < ... < js[r - 1] (each < n), in O(n^2 r).
    void remove(const int64_t* js, int64_t r);
    void remove(int64_t j) { remove(&j, 1); }
    // Solves L L^T x = b in place (b [n]).
    void solve(double* b) const;

private:
    void grow(int64_t capacity);    // keeps the factor
    void forward(double* b) const;  // L y = b in place (b [n])
    // Left uninitialised: only the lower triangle is ever touched, so half of a large
    // factor's pages are never faulted in.
    PooledDoubles L_;
    std::vector<double> v_, z_, cols_;  // scratch of factor(), append() and remove()
    std::vector<int64_t> kept_;         // scratch of remove()
    int64_t ld_ = 0, n_ = 0;
};

}  // namespace simattr
