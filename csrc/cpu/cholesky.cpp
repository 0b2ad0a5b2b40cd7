#include "cpu/cholesky.h"

#include <algorithm>
#include <cmath>

namespace simattr {

namespace {

// A pivot below this fraction of its diagonal entry means the matrix is singular to working
// precision: the factor would amplify rounding by more than 1e8.
constexpr double kMinPivotRatio = 1e-16;

}  // namespace

void GrowingCholesky::reset(int64_t capacity) {
    n_ = 0;
    if (capacity > ld_) grow(capacity);
}

void GrowingCholesky::grow(int64_t capacity) {
    std::unique_ptr<double[]> grown(new double[size_t(capacity * capacity)]);
    for (int64_t a = 0; a < n_; ++a) std::copy(&L_[a * ld_], &L_[a * ld_] + a + 1, &grown[a * capacity]);
    L_.swap(grown);
    ld_ = capacity;
}

bool GrowingCholesky::factor(const Blas& blas, const double* M, int64_t n) {
    reset(n + n / 4 + 8);  // room for the appends that usually follow
    if (blas.dpotrf != nullptr) {
        for (int64_t a = 0; a < n; ++a) std::copy(M + a * n, M + a * n + a + 1, &L_[a * ld_]);
        const int N = int(n), LD = int(ld_);
        int info = 0;
        blas.dpotrf("U", &N, L_.get(), &LD, &info);
        if (info != 0) return false;
        n_ = n;
        return true;
    }
    // Without LAPACK: row after row, each appended to the rows above it (up-looking).
    for (int64_t a = 0; a < n; ++a)
        if (!append(M + a * n, M[a * n + a])) {
            n_ = 0;
            return false;
        }
    return true;
}

void GrowingCholesky::forward(double* b) const {
    for (int64_t a = 0; a < n_; ++a) {
        const double* La = L_.get() + a * ld_;
        double t = b[a];
        for (int64_t k = 0; k < a; ++k) t -= La[k] * b[k];
        b[a] = t / La[a];
    }
}

bool GrowingCholesky::append(const double* m, double diag) {
    if (n_ == ld_) grow(std::max<int64_t>(16, ld_ + ld_ / 2));
    // The new row z solves L z = m (forward substitution); its pivot is diag - |z|^2.
    double* z = L_.get() + n_ * ld_;
    std::copy(m, m + n_, z);
    forward(z);
    double sq = 0.0;
    for (int64_t a = 0; a < n_; ++a) sq += z[a] * z[a];
    const double pivot = diag - sq;
    if (!(pivot > kMinPivotRatio * diag)) return false;
    z[n_] = std::sqrt(pivot);
    ++n_;
    return true;
}

void GrowingCholesky::remove(int64_t j) {
    // Rows below j lose column j and move up one row; the column they lose, v, leaves the
    // trailing block short of v v^T, which a rank-one update (Givens-style) puts back.
    const int64_t t = n_ - 1 - j;  // trailing rows
    v_.resize(size_t(t));
    for (int64_t i = 0; i < t; ++i) {
        double* src = L_.get() + (j + 1 + i) * ld_;
        double* dst = L_.get() + (j + i) * ld_;
        v_[i] = src[j];
        std::copy(src, src + j, dst);
        std::copy(src + j + 1, src + j + 2 + i, dst + j);
    }
    --n_;
    for (int64_t k = 0; k < t; ++k) {
        double* Lk = L_.get() + (j + k) * ld_;
        const double d = Lk[j + k], r = std::hypot(d, v_[k]);
        const double c = r / d, s = v_[k] / d;
        Lk[j + k] = r;
        for (int64_t i = k + 1; i < t; ++i) {
            double& Lik = L_[(j + i) * ld_ + j + k];
            Lik = (Lik + s * v_[i]) / c;
            v_[i] = c * v_[i] - s * Lik;
        }
    }
}

void GrowingCholesky::solve(double* b) const {
    forward(b);                              // L y = b, row by row
    for (int64_t a = n_ - 1; a >= 0; --a) {  // L^T x = y, column by column (rows of L)
        const double* La = L_.get() + a * ld_;
        b[a] /= La[a];
        const double xa = b[a];
        for (int64_t k = 0; k < a; ++k) b[k] -= La[k] * xa;
    }
}

}  // namespace simattr
