#include "cpu/cholesky.h"

#include <algorithm>
#include <cmath>

#include "common/simd.h"

namespace simattr {

namespace {

// A pivot below this fraction of its diagonal entry means the matrix is singular to working
// precision: the factor would amplify rounding by more than 1e8.
constexpr double kMinPivotRatio = 1e-16;

// a . b over n entries in 8 interleaved partial sums: a single accumulator is one chain of
// dependent adds (latency bound, and it cannot be vectorised without reordering the sum).
// The order is fixed, so results stay deterministic.
SIMATTR_INLINE double dot(const double* __restrict a, const double* __restrict b, int64_t n) {
    constexpr int64_t kLanes = 8;
    double acc[kLanes] = {};
    int64_t k = 0;
    for (; k + kLanes <= n; k += kLanes)
        for (int64_t j = 0; j < kLanes; ++j) acc[j] += a[k + j] * b[k + j];
    double s = 0.0;
    for (; k < n; ++k) s += a[k] * b[k];
    for (int64_t j = 0; j < kLanes; ++j) s += acc[j];
    return s;
}

// L y = b in place (L [n, n] lower, column-major, leading dimension ld): column by column,
// each an axpy down the column, independent across rows, so it vectorises.
SIMATTR_CLONES_FMA void forward_cols(const double* L, int64_t ld, int64_t n, double* __restrict b) {
    for (int64_t k = 0; k < n; ++k) {
        const double* __restrict Lk = L + k * ld;
        const double bk = b[k] / Lk[k];
        b[k] = bk;
        for (int64_t i = k + 1; i < n; ++i) b[i] -= Lk[i] * bk;
    }
}

// X L^T = B in place (no BLAS): X, B [k, n] column-major with leading dimension ld (L as
// above). Column c of X is (B_c - sum_{p<c} X_p L[c, p]) / L[c, c].
void solve_right_lower_t(const double* L, int64_t ld, int64_t n, double* X, int64_t k) {
    for (int64_t c = 0; c < n; ++c) {
        double* Xc = X + c * ld;
        for (int64_t p = 0; p < c; ++p) {
            const double lcp = L[p * ld + c];
            const double* Xp = X + p * ld;
            for (int64_t a = 0; a < k; ++a) Xc[a] -= Xp[a] * lcp;
        }
        const double inv = 1.0 / L[c * ld + c];
        for (int64_t a = 0; a < k; ++a) Xc[a] *= inv;
    }
}

// Factors the lower triangle of T [k, k] (column-major, leading dimension ld) in place, left-
// looking (no LAPACK). A non-positive pivot leaves a zero or NaN on the diagonal, which the
// caller's pivot test rejects.
void factor_lower(double* T, int64_t ld, int64_t k) {
    for (int64_t j = 0; j < k; ++j) {
        double* Tj = T + j * ld;
        for (int64_t p = 0; p < j; ++p) {
            const double* Tp = T + p * ld;
            for (int64_t i = j; i < k; ++i) Tj[i] -= Tp[i] * Tp[j];
        }
        const double r = std::sqrt(std::max(Tj[j], 0.0));
        Tj[j] = r;
        for (int64_t i = j + 1; i < k; ++i) Tj[i] /= r;
    }
}

// L^T x = y in place: row a of L^T is column a of L, so each unknown is one dot product.
SIMATTR_CLONES_FMA void backward_cols(const double* L, int64_t ld, int64_t n, double* b) {
    for (int64_t a = n - 1; a >= 0; --a) {
        const double* La = L + a * ld;
        b[a] = (b[a] - dot(La + a + 1, b + a + 1, n - 1 - a)) / La[a];
    }
}

// The rank-one update of remove(): P [t, t] (lower, column-major, leading dimension ld) is
// the trailing block that lost column v; afterwards P P^T is what it was plus v v^T. Column
// k absorbs v[k] into its diagonal (a Givens rotation) and mixes v into the rest of the
// column: contiguous and independent across rows, so it vectorises, and with multiplies by
// 1 / c (a divide per entry was half of the old row-major loop's time).
SIMATTR_CLONES_FMA void rotate_trailing(double* P, int64_t ld, int64_t t, double* __restrict v) {
    for (int64_t k = 0; k < t; ++k) {
        double* __restrict Pk = P + k * ld;
        const double d = Pk[k], r = std::sqrt(d * d + v[k] * v[k]);  // entries are O(1): no overflow
        const double c = r / d, s = v[k] / d, inv_c = d / r;
        Pk[k] = r;
        for (int64_t i = k + 1; i < t; ++i) {
            const double p = (Pk[i] + s * v[i]) * inv_c;
            Pk[i] = p;
            v[i] = c * v[i] - s * p;
        }
    }
}

}  // namespace

void GrowingCholesky::reset(int64_t capacity) {
    n_ = 0;
    if (capacity > ld_) grow(capacity);
}

void GrowingCholesky::set_pool(BufferPool* pool) {
    L_ = PooledDoubles(pool);
    ld_ = n_ = 0;
}

void GrowingCholesky::grow(int64_t capacity) {
    PooledDoubles grown(L_.pool());
    grown.reset(size_t(capacity * capacity));
    for (int64_t k = 0; k < n_; ++k) std::copy(&L_[k * ld_ + k], &L_[k * ld_ + n_], &grown[k * capacity + k]);
    L_.swap(grown);
    ld_ = capacity;
}

bool GrowingCholesky::factor(const Blas& blas, const double* M, int64_t n) {
    reset(n + n / 4 + 8);  // room for the appends that usually follow
    if (blas.dpotrf != nullptr) {
        // Row a of M's upper triangle is column a of the lower one (M is symmetric).
        for (int64_t a = 0; a < n; ++a) std::copy(M + a * n + a, M + a * n + n, &L_[a * ld_ + a]);
        const int N = int(n), LD = int(ld_);
        int info = 0;
        blas.dpotrf("L", &N, L_.data(), &LD, &info);
        if (info != 0) return false;
        n_ = n;
        return true;
    }
    // Without LAPACK: row after row, each appended to the rows above it (up-looking).
    v_.resize(size_t(n));
    for (int64_t a = 0; a < n; ++a) {
        for (int64_t b = 0; b < a; ++b) v_[b] = M[b * n + a];
        if (!append(v_.data(), M[a * n + a])) {
            n_ = 0;
            return false;
        }
    }
    return true;
}

void GrowingCholesky::forward(double* b) const {
    forward_cols(L_.data(), ld_, n_, b);
}

bool GrowingCholesky::append(const double* m, double diag) {
    if (n_ == ld_) grow(std::max<int64_t>(16, ld_ + ld_ / 2));
    // The new row z solves L z = m (forward substitution); its pivot is diag - |z|^2.
    z_.assign(m, m + n_);
    forward(z_.data());
    const double pivot = diag - dot(z_.data(), z_.data(), n_);
    if (!(pivot > kMinPivotRatio * diag)) return false;
    for (int64_t k = 0; k < n_; ++k) L_[k * ld_ + n_] = z_[k];  // row n_: one entry per column
    L_[n_ * ld_ + n_] = std::sqrt(pivot);
    ++n_;
    return true;
}

bool GrowingCholesky::append_block(const Blas& blas, const double* Mon, const double* Mnn, int64_t k) {
    if (k == 0) return true;
    const int64_t n = n_;
    if (n + k > ld_) grow(std::max(n + k, ld_ + ld_ / 2));
    // The new rows of L, L21 [k, n] (rows n.. of columns 0..n - 1), solve L21 L^T = Mon; the
    // trailing block L22 [k, k] factors T = Mnn - L21 L21^T. Both are written in place.
    double* L = L_.data();
    double* L21 = L + n;
    double* T = L + n * ld_ + n;
    for (int64_t c = 0; c < n; ++c)
        for (int64_t a = 0; a < k; ++a) L21[c * ld_ + a] = Mon[a * n + c];
    for (int64_t b = 0; b < k; ++b)  // the lower triangle of Mnn (row b of its upper one)
        for (int64_t a = b; a < k; ++a) T[b * ld_ + a] = Mnn[b * k + a];
    if (blas.dtrsm != nullptr && blas.dsyrk != nullptr && blas.dpotrf != nullptr) {
        const int N = int(n), K = int(k), LD = int(ld_);
        const double one = 1.0, minus_one = -1.0;
        int info = 0;
        if (n > 0) {
            blas.dtrsm("R", "L", "T", "N", &K, &N, &one, L, &LD, L21, &LD);
            blas.dsyrk("L", "N", &K, &N, &minus_one, L21, &LD, &one, T, &LD);
        }
        blas.dpotrf("L", &K, T, &LD, &info);
        if (info != 0) return false;
    } else {
        solve_right_lower_t(L, ld_, n, L21, k);
        for (int64_t b = 0; b < k; ++b)
            for (int64_t c = 0; c < n; ++c) {
                const double lb = L21[c * ld_ + b];
                for (int64_t a = b; a < k; ++a) T[b * ld_ + a] -= L21[c * ld_ + a] * lb;
            }
        factor_lower(T, ld_, k);
    }
    // A pivot (the diagonal of the factor, squared) is what append() would have found for
    // that row: the same singularity test.
    for (int64_t a = 0; a < k; ++a)
        if (!(T[a * ld_ + a] * T[a * ld_ + a] > kMinPivotRatio * Mnn[a * k + a])) return false;
    n_ = n + k;
    return true;
}

void GrowingCholesky::remove(const int64_t* js, int64_t r) {
    // The rows and columns in js leave; the rest close up in order, each entry moving at
    // most once (all removals together, where one at a time moved the trailing block once
    // per row). The removed columns' entries on the rows that stay, v_c, leave the trailing
    // block short of sum_c v_c v_c^T, which one rank-one update per column puts back.
    if (r == 0) return;
    const int64_t j0 = js[0];
    kept_.clear();  // old indices of the rows from j0 on that stay; new row j0 + b is kept_[b]
    for (int64_t i = j0, c = 0; i < n_; ++i) {
        if (c < r && js[c] == i)
            ++c;
        else
            kept_.push_back(i);
    }
    const int64_t tk = int64_t(kept_.size());
    double* L = L_.data();
    cols_.resize(size_t(r * tk));  // [r][tk]: v_c on the kept rows from j0 on (0 above row js[c])
    for (int64_t c = 0; c < r; ++c) {
        const double* col = L + js[c] * ld_;
        for (int64_t b = 0; b < tk; ++b) cols_[c * tk + b] = kept_[b] > js[c] ? col[kept_[b]] : 0.0;
    }
    // In place: an entry only ever moves to a lower row of a column no later than its own, and
    // columns and rows go in increasing order, so nothing is read after being overwritten.
    for (int64_t k = 0; k < j0; ++k) {
        double* col = L + k * ld_;
        for (int64_t b = 0; b < tk; ++b) col[j0 + b] = col[kept_[b]];
    }
    for (int64_t a = 0; a < tk; ++a) {
        const double* src = L + kept_[a] * ld_;
        double* dst = L + (j0 + a) * ld_;
        for (int64_t b = a; b < tk; ++b) dst[j0 + b] = src[kept_[b]];
    }
    n_ = j0 + tk;
    for (int64_t c = 0, p = 0; c < r; ++c) {
        while (p < tk && kept_[p] < js[c]) ++p;  // v_c is zero above new row j0 + p
        rotate_trailing(L + (j0 + p) * ld_ + j0 + p, ld_, tk - p, cols_.data() + c * tk + p);
    }
}

void GrowingCholesky::solve(double* b) const {
    forward(b);                            // L y = b
    backward_cols(L_.data(), ld_, n_, b);  // L^T x = y
}

}  // namespace simattr
