#include "cpu/newton.h"

#include "cpu/dcd_cpu.h"  // gram_margins

#include <algorithm>
#include <cmath>

namespace simattr {

namespace {

// Solves M x = b for the SPD M [n, n] (row-major, lower triangle filled) in place, with
// LAPACK when given (row-major lower is column-major upper), else a plain Cholesky.
// Returns false when M is not numerically positive definite.
bool cholesky_solve(const Blas& blas, std::vector<double>& M, int64_t n, std::vector<double>& b) {
    if (blas.dpotrf != nullptr && blas.dpotrs != nullptr) {
        const int N = int(n), one = 1;
        int info = 0;
        blas.dpotrf("U", &N, M.data(), &N, &info);
        if (info != 0) return false;
        blas.dpotrs("U", &N, &one, M.data(), &N, b.data(), &N, &info);
        return info == 0;
    }
    for (int64_t j = 0; j < n; ++j) {
        double s = M[j * n + j];
        for (int64_t k = 0; k < j; ++k) s -= M[j * n + k] * M[j * n + k];
        if (!(s > 0.0)) return false;
        const double piv = std::sqrt(s);
        M[j * n + j] = piv;
        for (int64_t i = j + 1; i < n; ++i) {
            double t = M[i * n + j];
            for (int64_t k = 0; k < j; ++k) t -= M[i * n + k] * M[j * n + k];
            M[i * n + j] = t / piv;
        }
    }
    for (int64_t i = 0; i < n; ++i) {  // L y = b
        double t = b[i];
        for (int64_t k = 0; k < i; ++k) t -= M[i * n + k] * b[k];
        b[i] = t / M[i * n + i];
    }
    for (int64_t i = n - 1; i >= 0; --i) {  // L^T x = y
        double t = b[i];
        for (int64_t k = i + 1; k < n; ++k) t -= M[k * n + i] * b[k];
        b[i] = t / M[i * n + i];
    }
    return true;
}

// Largest |projected gradient| with no upper bound.
double max_pg(const double* alpha, const std::vector<double>& g, int64_t l, const DcdConstants& dc) {
    double m = 0.0;
    for (int64_t t = 0; t < l; ++t) {
        const double G = dc.gradient(t, g[t], alpha[t]);
        m = std::max(m, alpha[t] > 0.0 ? std::fabs(G) : std::max(0.0, -G));
    }
    return m;
}

}  // namespace

bool newton_active_set(const Blas& blas, const double* K, int64_t l, const DcdConstants& dc, double* alpha,
                       std::vector<double>& g) {
    constexpr int64_t kMaxActive = 2048;
    constexpr int kMaxSteps = 4;
    std::vector<uint8_t> in(size_t(l), 0);
    for (int64_t t = 0; t < l; ++t) in[t] = alpha[t] > 0.0 || dc.gradient(t, g[t], alpha[t]) < 0.0;
    std::vector<double> alpha2(static_cast<size_t>(l)), g2(static_cast<size_t>(l)), M, x;
    std::vector<int64_t> A;
    for (int step = 0; step < kMaxSteps; ++step) {
        A.clear();
        for (int64_t t = 0; t < l; ++t)
            if (in[t]) A.push_back(t);
        const int64_t n = int64_t(A.size());
        if (n == 0 || n > kMaxActive) return false;
        M.assign(size_t(n * n), 0.0);
        x.assign(size_t(n), 1.0);
        for (int64_t a = 0; a < n; ++a)
            for (int64_t b = 0; b <= a; ++b)
                M[a * n + b] =
                    slot_y(A[a]) * slot_y(A[b]) * K[A[a] * l + A[b]] + (a == b ? dc.diag(A[a]) : 0.0);
        if (!cholesky_solve(blas, M, n, x)) return false;
        // Coordinates the solve drives negative leave the active set (their alpha is 0).
        bool negative = false;
        for (int64_t a = 0; a < n; ++a)
            if (x[a] < 0.0) {
                in[A[a]] = 0;
                negative = true;
            }
        if (negative) continue;
        std::fill(alpha2.begin(), alpha2.end(), 0.0);
        for (int64_t a = 0; a < n; ++a) alpha2[A[a]] = x[a];
        gram_margins(K, l, alpha2.data(), g2.data());
        // Coordinates outside A that now violate (G < 0) join it; if none does, done.
        bool grew = false;
        for (int64_t t = 0; t < l; ++t)
            if (!in[t] && dc.gradient(t, g2[t], alpha2[t]) < 0.0) {
                in[t] = 1;
                grew = true;
            }
        if (grew) continue;
        if (max_pg(alpha2.data(), g2, l, dc) >= max_pg(alpha, g, l, dc)) return false;
        std::copy(alpha2.begin(), alpha2.end(), alpha);
        g.swap(g2);
        return true;
    }
    return false;
}

}  // namespace simattr
