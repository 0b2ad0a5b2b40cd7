#include "cpu/dcd_cpu.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/simd.h"
#include "cpu/newton.h"

namespace simattr {

namespace {

// Tolerance at which the Gram-form solver tries a Newton step on the active set.
constexpr double kNewtonFrom = 3e-1;

// 32 independent partial sums hide the FMA latency (one accumulator chain is latency
// bound); the summation order is fixed, so results stay deterministic.
SIMATTR_INLINE double dot_aug(const double* __restrict w, const float* __restrict x, int64_t d, double B) {
    constexpr int64_t kLanes = 32;
    double acc[kLanes] = {};
    int64_t c = 0;
    for (; c + kLanes <= d; c += kLanes) {
#pragma omp simd
        for (int64_t j = 0; j < kLanes; ++j) acc[j] += w[c + j] * double(x[c + j]);
    }
    double s = 0.0;
    for (; c < d; ++c) s += w[c] * double(x[c]);
    for (int64_t j = 0; j < kLanes; ++j) s += acc[j];
    return s + w[d] * B;
}

SIMATTR_INLINE void axpy_aug(double* __restrict w, double a, const float* __restrict x, int64_t d, double B) {
#pragma omp simd
    for (int64_t c = 0; c < d; ++c) w[c] += a * double(x[c]);
    w[d] += a * B;
}

// The sweep loop of liblinear's solve_l2r_l1l2_svc, shared by both forms. The oracle gives
// margin(t) = w . x~_t, qd(t) = |x~_t|^2 (without the diagonal term) and applies
// update(t, delta) for w += delta x~_t.
template <class Oracle>
SIMATTR_INLINE bool sweeps(const WorkingSet& ws, DcdState& st, double tol, int64_t max_iter, Oracle& o) {
    const int64_t l = ws.l;
    std::vector<int64_t> index(l);
    for (int64_t t = 0; t < l; ++t) index[t] = t;
    int64_t active = l;
    double pg_max_old = 1e300, pg_min_old = -1e300;
    while (*st.iters < max_iter) {
        double pg_max_new = -1e300, pg_min_new = 1e300;
        for (int64_t t = 0; t < active; ++t) std::swap(index[t], index[t + st.rng->below(active - t)]);
        for (int64_t t = 0; t < active; ++t) {
            const int64_t slot = index[t];
            const double upper = ws.dc.upper(slot);
            double& alpha = st.alpha[slot];
            const double G = ws.dc.gradient(slot, o.margin(slot), alpha);
            double pg;
            if (dcd_visit(G, alpha, upper, pg_max_old, pg_min_old, &pg) == DcdAction::Shrink) {
                --active;
                std::swap(index[t], index[active]);
                --t;
                continue;
            }
            pg_max_new = std::max(pg_max_new, pg);
            pg_min_new = std::min(pg_min_new, pg);
            if (std::fabs(pg) > 1e-12) {
                const double old = alpha;
                alpha = dcd_step(alpha, G, o.qd(slot) + ws.dc.diag(slot), upper);
                o.update(slot, (alpha - old) * slot_y(slot));
            }
        }
        ++*st.iters;
        if (dcd_sweep_end(pg_max_new, pg_min_new, tol, l, &active, &pg_max_old, &pg_min_old)) return true;
    }
    return false;
}

struct PrimalOracle {
    const WorkingSet& ws;
    double* w;
    std::vector<double> norms;
    PrimalOracle(const WorkingSet& s, double* w_) : ws(s), w(w_), norms(s.l) {
        for (int64_t t = 0; t < s.l; ++t) {
            const float* x = s.rows[t];
            double n = 0.0;
            for (int64_t c = 0; c < s.d; ++c) n += double(x[c]) * x[c];
            norms[t] = n + s.B * s.B;
        }
    }
    SIMATTR_INLINE double margin(int64_t t) const { return dot_aug(w, ws.rows[t], ws.d, ws.B); }
    SIMATTR_INLINE double qd(int64_t t) const { return norms[t]; }
    SIMATTR_INLINE void update(int64_t t, double delta) { axpy_aug(w, delta, ws.rows[t], ws.d, ws.B); }
};

struct GramOracle {
    const double* K;
    int64_t l;
    std::vector<double> g;  // g[t] = w . x~_t
    GramOracle(const double* K_, int64_t l_, const double* alpha) : K(K_), l(l_), g(l_) {
        gram_margins(K, l, alpha, g.data());
    }
    SIMATTR_INLINE double margin(int64_t t) const { return g[t]; }
    SIMATTR_INLINE double qd(int64_t t) const { return K[t * l + t]; }
    SIMATTR_INLINE void update(int64_t t, double delta) {
        const double* __restrict row = K + t * l;  // K is symmetric: row t is column t
        double* __restrict gg = g.data();
#pragma omp simd
        for (int64_t u = 0; u < l; ++u) gg[u] += delta * row[u];
    }
};

}  // namespace

void gram_margins(const double* K, int64_t l, const double* alpha, double* g) {
    std::fill(g, g + l, 0.0);
    for (int64_t u = 0; u < l; ++u) {
        const double c = alpha[u] * slot_y(u);
        if (c == 0.0) continue;
        const double* row = K + u * l;  // K is symmetric: row u is column u
        for (int64_t t = 0; t < l; ++t) g[t] += c * row[t];
    }
}

SIMATTR_CLONES_FMA bool dcd_primal(const WorkingSet& ws, DcdState& st, double tol, int64_t max_iter) {
    PrimalOracle o(ws, st.w);
    return sweeps(ws, st, tol, max_iter, o);
}

SIMATTR_CLONES_FMA bool dcd_gram(const WorkingSet& ws, const double* K, DcdState& st, double tol,
                                 int64_t max_iter, const Blas& blas, NewtonWarm* warm,
                                 const int64_t* slot_ids) {
    GramOracle o(K, ws.l, st.alpha);
    const bool squared = ws.dc.diag_neg > 0.0;
    // Squared hinge: a Newton step on the active set guessed from the warm start (the last
    // round's solution) usually lands on the optimum at once. Where it fails, sweep until the
    // active set settles and retry, ten times tighter each time. Sweeps at tol always have
    // the last word, so liblinear's stopping rule decides convergence either way.
    bool landed = squared && newton_active_set(blas, K, ws.l, ws.dc, st.alpha, o.g, warm, slot_ids);
    for (double t = kNewtonFrom; squared && !landed && t > tol; t *= 0.1) {
        if (!sweeps(ws, st, t, max_iter, o)) break;  // max_iter reached
        landed = newton_active_set(blas, K, ws.l, ws.dc, st.alpha, o.g, warm, slot_ids);
    }
    const bool ok = sweeps(ws, st, tol, max_iter, o);
    std::fill(st.w, st.w + ws.d + 1, 0.0);
    for (int64_t t = 0; t < ws.l; ++t)
        if (st.alpha[t] != 0.0) axpy_aug(st.w, st.alpha[t] * slot_y(t), ws.rows[t], ws.d, ws.B);
    return ok;
}

}  // namespace simattr
