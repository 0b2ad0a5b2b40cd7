#include <algorithm>
#include <cmath>
#include <vector>

#include "dcd_math.h"
#include "esvm.h"
#include "parallel.h"
#include "simd.h"

namespace simattr {

namespace {

// State of one exemplar SVM. w has d + 1 entries: the last one multiplies the constant B.
struct Svm {
    std::vector<double> w;
    double alpha_pos = 0.0;
    std::vector<int64_t> ws;      // working set: pool rows whose dual variable is tracked
    std::vector<double> alpha;    // alpha of ws[t]; every pool row outside ws has alpha 0
    std::vector<uint8_t> in_ws;   // [n] membership flags
    int64_t iters = 0;
    double round_tol = 0.0;       // tolerance of the current round (loose first, then tol)
    bool inner_converged = false;
    bool done = false;
    SplitMix64 rng{0};
};

struct Problem {
    const float* pool;
    int64_t ldp, n, d;
    double B;
    DcdConstants k;
    const EsvmParams* p;
    std::vector<double> qd_neg;  // [n] |x_i|^2 + B^2 + diag_neg
};

// Raw restrict pointers: through std::vector the compiler emulated gathers for w.
// 32 independent partial sums hide the FMA latency (one accumulator chain is latency
// bound); the summation order is fixed, so results stay deterministic.
inline double dot_aug(const double* __restrict w, const float* __restrict x, int64_t d, double B) {
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

inline void axpy_aug(double* __restrict w, double a, const float* __restrict x, int64_t d, double B) {
#pragma omp simd
    for (int64_t c = 0; c < d; ++c) w[c] += a * double(x[c]);
    w[d] += a * B;
}

// liblinear's solve_l2r_l1l2_svc restricted to {positive} U working set, warm-started from
// the current alphas. Slot 0 is the positive, slot t > 0 is ws[t - 1].
SIMATTR_CLONES void solve_working_set(const Problem& P, const float* q, double qd_pos, Svm& s) {
    const int64_t l = 1 + int64_t(s.ws.size());
    std::vector<int64_t> index(l);
    for (int64_t t = 0; t < l; ++t) index[t] = t;
    int64_t active = l;
    double pg_max_old = 1e300, pg_min_old = -1e300;
    s.inner_converged = false;
    while (s.iters < P.p->max_iter) {
        double pg_max_new = -1e300, pg_min_new = 1e300;
        for (int64_t t = 0; t < active; ++t) std::swap(index[t], index[t + s.rng.below(active - t)]);
        for (int64_t t = 0; t < active; ++t) {
            const int64_t slot = index[t];
            const bool pos = slot == 0;
            const float* x = pos ? q : P.pool + s.ws[slot - 1] * P.ldp;
            double& alpha = pos ? s.alpha_pos : s.alpha[slot - 1];
            const double y = pos ? 1.0 : -1.0;
            const double diag = pos ? P.k.diag_pos : P.k.diag_neg;
            const double upper = pos ? P.k.upper_pos : P.k.upper_neg;
            const double G = y * dot_aug(s.w.data(), x, P.d, P.B) - 1.0 + diag * alpha;
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
                alpha = dcd_step(alpha, G, pos ? qd_pos : P.qd_neg[s.ws[slot - 1]], upper);
                axpy_aug(s.w.data(), (alpha - old) * y, x, P.d, P.B);
            }
        }
        ++s.iters;
        if (pg_max_new - pg_min_new <= s.round_tol) {
            if (active == l) {
                s.inner_converged = true;
                break;
            }
            active = l;  // liblinear: un-shrink and verify on every coordinate
            pg_max_old = 1e300;
            pg_min_old = -1e300;
            continue;
        }
        dcd_next_thresholds(pg_max_new, pg_min_new, &pg_max_old, &pg_min_old);
    }
}

// Pool rows outside the working set whose gradient G = -f_i - 1 (alpha_i = 0) is below
// `margin`, worst first, at most `budget` of them. f holds w.x_i + w_B B for every pool row.
std::vector<int64_t> violators(const float* f, const Svm& s, int64_t n, double margin,
                               int64_t budget) {
    std::vector<std::pair<double, int64_t>> v;
    for (int64_t i = 0; i < n; ++i) {
        const double G = -double(f[i]) - 1.0;
        if (G < margin && !s.in_ws[i]) v.emplace_back(G, i);
    }
    if (int64_t(v.size()) > budget) {
        std::nth_element(v.begin(), v.begin() + budget, v.end());
        v.resize(budget);
    }
    std::sort(v.begin(), v.end());
    std::vector<int64_t> out(v.size());
    for (size_t t = 0; t < v.size(); ++t) out[t] = v[t].second;
    return out;
}

void add_to_working_set(Svm& s, const std::vector<int64_t>& rows) {
    for (int64_t i : rows) {
        s.ws.push_back(i);
        s.alpha.push_back(0.0);
        s.in_ws[i] = 1;
    }
}

}  // namespace

void esvm_topk(const float* queries, int64_t ldq, int64_t m, const float* pool, int64_t ldp,
               int64_t n, int64_t d, const int64_t* pool_ids, const int64_t* query_ids,
               const EsvmParams& params, SgemmFn sgemm, TopkAccumulator& acc, int64_t row0,
               int64_t* n_iter, uint8_t* converged) {
    if (m == 0) return;
    const int nt = params.n_threads;
    Problem P{pool, ldp, n, d, params.intercept_scaling,
              dcd_constants(params.C, std::max<int64_t>(n, 1), params.squared_hinge), &params,
              std::vector<double>(n)};
    double max_norm = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        const float* x = pool + i * ldp;
        double s = 0.0;
        for (int64_t c = 0; c < d; ++c) s += double(x[c]) * x[c];
        max_norm = std::max(max_norm, s);
        P.qd_neg[i] = s + P.B * P.B + P.k.diag_neg;
    }
    max_norm = std::sqrt(max_norm + P.B * P.B);

    // Queries are solved in tiles; one tile's decision values [tile, n] are the only
    // pool-sized buffer (bounded to ~64 MiB), plus the membership flags.
    const int64_t tile = std::max<int64_t>(1, std::min<int64_t>(m, (int64_t(1) << 24) / std::max<int64_t>(n, 1)));
    constexpr int64_t kInitialWorkingSet = 64;
    // While the working set is still growing, sweeps stop at a loose tolerance: the exact
    // solution of a working set that is about to change is wasted work. Once no violator
    // is left, the round tolerance drops to tol and the rounds repeat until none appears.
    constexpr double kLooseTol = 1e-2;
    std::vector<float> F, W32;
    for (int64_t t0 = 0; t0 < m; t0 += tile) {
        const int64_t tm = std::min(tile, m - t0);
        std::vector<Svm> svms(tm);
        std::vector<double> qd_pos(tm);
        for (int64_t j = 0; j < tm; ++j) {
            Svm& s = svms[j];
            s.w.assign(d + 1, 0.0);
            s.in_ws.assign(n, 0);
            s.rng = SplitMix64(query_seed(params.seed, query_ids[t0 + j]));
            s.round_tol = std::max(params.tol, kLooseTol);
            const float* q = queries + (t0 + j) * ldq;
            double qq = 0.0;
            for (int64_t c = 0; c < d; ++c) qq += double(q[c]) * q[c];
            qd_pos[j] = qq + P.B * P.B + P.k.diag_pos;
        }
        F.resize(size_t(tm * std::max<int64_t>(n, 1)));
        W32.resize(size_t(tm * std::max<int64_t>(d, 1)));
        // Initial working set: the pool rows most similar to the query (inner product), which
        // are where an exemplar SVM's support vectors usually lie.
        gemm_abt(sgemm, queries + t0 * ldq, ldq, pool, ldp, F.data(), n, tm, n, d, nt);
        parallel_for(tm, nt, [&](int64_t j) {
            Svm& s = svms[j];
            std::vector<int64_t> order(n);
            for (int64_t i = 0; i < n; ++i) order[i] = i;
            const float* f = F.data() + j * n;
            const int64_t a0 = std::min(n, kInitialWorkingSet);
            std::partial_sort(order.begin(), order.begin() + a0, order.end(),
                              [&](int64_t a, int64_t b) { return f[a] > f[b] || (f[a] == f[b] && a < b); });
            order.resize(a0);
            add_to_working_set(s, order);
            solve_working_set(P, queries + (t0 + j) * ldq, qd_pos[j], s);
        });
        std::vector<int64_t> live(tm);
        for (int64_t j = 0; j < tm; ++j) live[j] = j;
        while (!live.empty()) {
            const int64_t nl = int64_t(live.size());
            for (int64_t r = 0; r < nl; ++r)
                for (int64_t c = 0; c < d; ++c) W32[r * d + c] = float(svms[live[r]].w[c]);
            gemm_abt(sgemm, W32.data(), d, pool, ldp, F.data(), n, nl, n, d, nt);
            parallel_for(nl, nt, [&](int64_t r) {
                Svm& s = svms[live[r]];
                float* f = F.data() + r * n;
                const float bias = float(s.w[d] * P.B);
                for (int64_t i = 0; i < n; ++i) f[i] += bias;
                if (s.iters >= params.max_iter) {
                    s.done = true;
                    return;
                }
                // float32 GEMM error is far below this margin, so a row left out truly has
                // alpha = 0 and a non-negative gradient up to tol: liblinear's stopping rule.
                double wn = 0.0;
                for (double v : s.w) wn += v * v;
                const double margin = params.tol + 1e-5 * std::sqrt(wn) * max_norm;
                const int64_t budget = std::max<int64_t>(kInitialWorkingSet, int64_t(s.ws.size()));
                const std::vector<int64_t> add = violators(f, s, n, margin, budget);
                if (add.empty()) {
                    if (s.round_tol <= params.tol) {
                        s.done = true;
                        return;
                    }
                    s.round_tol = params.tol;
                }
                add_to_working_set(s, add);
                solve_working_set(P, queries + (t0 + live[r]) * ldq, qd_pos[live[r]], s);
            });
            // Finished queries hand over their decision values (from the GEMM just done,
            // i.e. from their final w); the rest go round again.
            std::vector<int64_t> next;
            for (int64_t r = 0; r < nl; ++r) {
                const int64_t j = live[r];
                if (svms[j].done) {
                    acc.push(row0 + t0 + j, 1, F.data() + r * n, n, pool_ids, n, 1);
                    n_iter[t0 + j] = svms[j].iters;
                    converged[t0 + j] = svms[j].inner_converged ? 1 : 0;
                } else {
                    next.push_back(j);
                }
            }
            live.swap(next);
        }
    }
}

}  // namespace simattr
