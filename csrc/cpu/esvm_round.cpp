#include "cpu/esvm_round.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/dcd_cpu.h"
#include "cpu/gram.h"

namespace simattr {
namespace esvm_detail {

namespace {

// While the working set is still growing, sweeps stop at a loose tolerance: the exact
// solution of a working set that is about to change is wasted work. Once no violator is
// left the round tolerance drops to tol, and rounds repeat until none appears. (Gram-form
// solves of the squared hinge land exactly anyway, by a Newton step, and sweep at tol.)
constexpr double kLooseTol = 1e-1;
// Each round adds the worst violators, at most half its size and between 32 and 64 of them.
// Every row added costs a Gram row and a place in the Newton system, and one that is not a
// support vector is dropped again, so slow growth pays: on the main job (Fashion-MNIST's SimCLR embedding,
// all 10,000 test images) 14.1 s with 16 rows and 2x the size a round, 9.4 s with this rule. The cap matters
// where the working sets grow to ~1,000 rows (i.i.d. Gaussian data at d = 512: 10.3 s without it, 7.6 s with
// a cap of 128; since the Newton factor grows by blocks, a cap of 64 is 5% faster there again, 256 20%
// slower, and the other data are unchanged).
constexpr int64_t kMinAdd = 32, kMaxAdd = 64;
// Working sets up to this size (and below 2d) use the Gram form: O(l) per visit, K [l, l]
// in double (32 MiB at most).
constexpr int64_t kGramMax = 2048;
// With the squared hinge the Gram form also ends each solve with a Newton step, which
// beats hundreds of O(d)-per-visit primal sweeps while the system stays small: up to 4d
// rows when that is at most this many (Fashion-MNIST's 256-d SimCLR embedding: 30% faster
// overall than primal sweeps, and 4d rather than 3d another 7% since the Gram rows come from
// cpu/gram.h). Larger systems (i.i.d. Gaussian data at d = 512: ~750 active rows; a cap of
// 2048 left them as fast, and made the pixels and the clustered data 5-8% slower) cost more
// in Gram matrices and factorisations than the sweeps they save, so they stay primal.
constexpr int64_t kGramNewtonMax = 1024;
// Working-set rows with alpha 0 and a gradient above this (in margin units) are dropped. A
// row dropped too early is found again by the next round's check, but one kept costs its
// place in every solve: 0.01 rather than 0.05 made i.i.d. Gaussian data 7% faster (300
// queries: 9.7-9.8 s to 8.8-9.3 s), 0 to 0.01 measured the same, 0.2 and 1 were 40-70% slower,
// and the other data are unchanged within noise.
constexpr double kPruneGradient = 0.01;

// Runs liblinear's sweeps on {query} U working set, in Gram form when the working set is
// small. The Gram form reads the rows where they are (its sweeps visit K, not the rows); the
// primal form gathers them contiguously first, to keep them in cache across its sweeps. The
// Gram matrix is kept between rounds and only extended by the rows added since.
void solve_working_set(const Problem& P, const float* q, Svm& s) {
    const int64_t l = 1 + int64_t(s.ws.size()), d = P.d;
    const bool squared = P.dc.diag_neg > 0.0, gram = l <= gram_rows_max(d, P.n, squared);
    thread_local std::vector<const float*> ptrs;
    thread_local std::vector<float> rows;
    thread_local std::vector<double> xd;
    ptrs.resize(size_t(l));
    ptrs[0] = q;
    for (int64_t t = 1; t < l; ++t) ptrs[size_t(t)] = P.keys + s.ws[t - 1] * P.ldk;
    if (!gram || !gram_f32_enabled()) {  // the primal sweeps, or dgemm, want them side by side
        rows.resize(size_t(l * d));
        for (int64_t t = 0; t < l; ++t) {
            std::copy(ptrs[size_t(t)], ptrs[size_t(t)] + d, rows.begin() + t * d);
            ptrs[size_t(t)] = rows.data() + t * d;
        }
    }
    const WorkingSet ws{ptrs.data(), l, d, P.B, P.dc};
    DcdState st{s.alpha.data(), s.w.data(), &s.rng, &s.iters};
    if (gram) {
        layout_gram(s, l);  // the kept block, at stride l
        if (gram_f32_enabled()) {
            gram_aug_f32(ptrs.data(), l, d, s.gram_l, P.B, s.K.data());
        } else {
            xd.assign(rows.begin(), rows.end());
            gram_aug(P.blas->dgemm, xd.data(), l, d, s.gram_l, P.B, s.K.data());
        }
        s.gram_l = l;
        thread_local std::vector<int64_t> ids;
        ids.assign(1, -1);
        ids.insert(ids.end(), s.ws.begin(), s.ws.end());
        // With the squared hinge the Newton step lands on the exact optimum of the working set
        // whatever the round's tolerance, so its confirming sweeps may as well use tol: a
        // set to which no violator is then added is done, without a round only to tighten.
        const double tol = squared ? P.p->tol : s.round_tol;
        s.converged = dcd_gram(ws, s.K.data(), st, tol, P.p->max_iter, *P.blas, &s.newton, ids.data());
        s.tight = tol <= P.p->tol;
    } else {
        s.K.resize(0);  // keeps its buffer, should the set shrink back into Gram form
        s.gram_l = s.gram_ld = 0;
        s.gram_src.clear();
        s.converged = dcd_primal(ws, st, s.round_tol, P.p->max_iter);
        s.tight = s.round_tol <= P.p->tol;
    }
}

}  // namespace

int64_t gram_rows_max(int64_t d, int64_t n, bool squared) {
    return std::min({kGramMax, n + 1, std::max(2 * d, squared ? std::min(4 * d, kGramNewtonMax) : 0)});
}

// A plain double loop here was one dependent add per element: 8% of a call in ImageNet's shape.
double max_augmented_norm(const Problem& P) {
    return std::sqrt(*std::max_element(P.sq_norms, P.sq_norms + P.n) + P.B * P.B);
}

void start_svm(const Problem& P, const float* query, uint64_t seed, const std::vector<int64_t>& rows,
               Svm& s) {
    s.w.assign(P.d + 1, 0.0);
    s.alpha.assign(1, 0.0);
    s.in_ws.assign(P.n, 0);
    s.rng = SplitMix64(seed);
    s.round_tol = std::max(P.p->tol, kLooseTol);
    s.K = PooledDoubles(P.pool);
    s.newton.chol.set_pool(P.pool);
    add_to_working_set(s, rows);
    solve_working_set(P, query, s);
}

void finish(Svm& s) {
    s.done = true;
    s.K.release();
    s.newton = NewtonWarm();
}

void refresh_svm(const Problem& P, const float* query, Svm& s, float* f, double max_norm) {
    const EsvmParams& params = *P.p;
    const float bias = float(s.w[P.d] * P.B);
    for (int64_t i = 0; i < P.n; ++i) f[i] += bias;
    if (s.iters >= params.max_iter) {
        finish(s);
        return;
    }
    // float32 GEMM error is far below this margin, so a row left out truly has alpha = 0
    // and a non-negative gradient up to tol: liblinear's stopping rule.
    double wn = 0.0;
    for (double v : s.w) wn += v * v;
    const double margin = params.tol + 1e-5 * std::sqrt(wn) * max_norm;
    prune_working_set(s, f, kPruneGradient + margin);
    const int64_t budget = std::clamp<int64_t>(int64_t(s.ws.size()) / 2, kMinAdd, kMaxAdd);
    const std::vector<int64_t> add = violators(f, s, P.n, margin, budget);
    if (add.empty()) {
        if (s.tight && s.converged) {
            finish(s);
            return;
        }
        s.round_tol = params.tol;
    }
    add_to_working_set(s, add);
    solve_working_set(P, query, s);
}

}  // namespace esvm_detail
}  // namespace simattr
