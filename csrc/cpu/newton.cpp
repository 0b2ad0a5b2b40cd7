#include "cpu/newton.h"

#include "cpu/cholesky.h"
#include "cpu/dcd_cpu.h"  // gram_margins

#include <algorithm>
#include <cmath>

namespace simattr {

namespace {

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
    // A primal-dual active-set iteration: solve on A, drop coordinates the solve drives
    // negative, add those outside A that then violate, until A is consistent. Each change
    // updates the Cholesky factor in O(|A|^2); a change of more than a quarter of A
    // refactors instead (cheaper than that many updates, and resets accumulated rounding).
    constexpr int64_t kMaxActive = 2048;
    constexpr int kMaxSteps = 16;
    thread_local GrowingCholesky chol;
    thread_local std::vector<double> M, x, row, alpha2, g2;
    thread_local std::vector<int64_t> A, drop, add;
    thread_local std::vector<uint8_t> in;
    const auto entry = [&](int64_t s, int64_t t) { return slot_y(s) * slot_y(t) * K[s * l + t]; };
    in.assign(size_t(l), 0);
    A.clear();
    for (int64_t t = 0; t < l; ++t)
        if (alpha[t] > 0.0 || dc.gradient(t, g[t], alpha[t]) < 0.0) {
            in[t] = 1;
            A.push_back(t);
        }
    const auto refactor = [&]() {
        const int64_t n = int64_t(A.size());
        M.resize(size_t(n * n));
        for (int64_t a = 0; a < n; ++a)
            for (int64_t b = 0; b <= a; ++b)
                M[a * n + b] = entry(A[a], A[b]) + (a == b ? dc.diag(A[a]) : 0.0);
        return chol.factor(blas, M.data(), n);
    };
    if (A.empty() || int64_t(A.size()) > kMaxActive || !refactor()) return false;
    alpha2.resize(size_t(l));
    g2.resize(size_t(l));
    for (int step = 0; step < kMaxSteps; ++step) {
        const int64_t n = int64_t(A.size());
        x.assign(size_t(n), 1.0);
        chol.solve(x.data());
        // Coordinates the solve drives negative leave the active set (their alpha is 0).
        drop.clear();
        for (int64_t a = 0; a < n; ++a)
            if (x[a] < 0.0) drop.push_back(a);
        if (!drop.empty()) {
            for (int64_t a : drop) in[A[a]] = 0;
            for (auto it = drop.rbegin(); it != drop.rend(); ++it) A.erase(A.begin() + *it);
            if (A.empty()) return false;
            if (4 * int64_t(drop.size()) > n) {
                if (!refactor()) return false;
            } else {
                for (auto it = drop.rbegin(); it != drop.rend(); ++it) chol.remove(*it);
            }
            continue;
        }
        std::fill(alpha2.begin(), alpha2.end(), 0.0);
        for (int64_t a = 0; a < n; ++a) alpha2[A[a]] = x[a];
        gram_margins(K, l, alpha2.data(), g2.data());
        // Coordinates outside A that now violate (G < 0) join it; if none does, done.
        add.clear();
        for (int64_t t = 0; t < l; ++t)
            if (!in[t] && dc.gradient(t, g2[t], alpha2[t]) < 0.0) add.push_back(t);
        if (!add.empty()) {
            if (n + int64_t(add.size()) > kMaxActive) return false;
            for (int64_t t : add) in[t] = 1;
            if (4 * int64_t(add.size()) > n) {
                A.insert(A.end(), add.begin(), add.end());
                if (!refactor()) return false;
                continue;
            }
            for (int64_t t : add) {
                row.resize(A.size());
                for (size_t a = 0; a < A.size(); ++a) row[a] = entry(t, A[a]);
                if (!chol.append(row.data(), entry(t, t) + dc.diag(t))) return false;
                A.push_back(t);
            }
            continue;
        }
        if (max_pg(alpha2.data(), g2, l, dc) >= max_pg(alpha, g, l, dc)) return false;
        std::copy(alpha2.begin(), alpha2.end(), alpha);
        std::copy(g2.begin(), g2.end(), g.begin());
        return true;
    }
    return false;
}

}  // namespace simattr
