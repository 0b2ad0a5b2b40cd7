#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "common/parallel.h"
#include "cpu/dcd_cpu.h"
#include "cpu/esvm.h"
#include "cpu/esvm_working_set.h"
#include "cpu/gram.h"
#include "cpu/rows.h"
#include "cpu/scores.h"

namespace simattr {

namespace {

using namespace esvm_detail;

// While the working set is still growing, sweeps stop at a loose tolerance: the exact
// solution of a working set that is about to change is wasted work. Once no violator is
// left the round tolerance drops to tol, and rounds repeat until none appears. (Gram-form
// solves of the squared hinge land exactly anyway, by a Newton step, and sweep at tol.)
constexpr double kLooseTol = 1e-1;
// The working set starts from the 32 key rows nearest the query in Euclidean distance (not
// by inner product: with keys of unequal norms, the main job's support vectors lie among the
// nearest by distance, 53% of them within as many rows, against 13% by inner product; 6.6
// rounds became 5.8 and the main job 6-8% faster); each round adds the worst
// violators, at most half its size and between 32 and 64 of them. Every row added costs a
// Gram row and a place in the Newton system, and one that is not a support vector is dropped
// again, so slow growth pays: on the main job (Fashion-MNIST's SimCLR embedding, all 10,000
// test images) 14.1 s with 16 rows and 2x the size a round, 9.4 s with this rule. The cap
// matters where the working sets grow to ~1,000 rows (i.i.d. Gaussian data at d = 512:
// 10.3 s without it, 7.6 s with a cap of 128; since the Newton factor grows by blocks, a cap
// of 64 is 5% faster there again, 256 20% slower, and the other data are unchanged).
constexpr int64_t kInitialWorkingSet = 32;
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
// The Gram matrices of one tile of SVMs may hold this much at most (each SVM's matrix is kept
// between rounds): tiles shrink where the largest possible matrix is big (d >= 1024 with
// large pools), and keep the full batch everywhere else.
constexpr int64_t kGramTileBytes = int64_t(2) << 30;

// The largest working set an SVM solves in Gram form: the query and n keys at most.
int64_t gram_rows_max(int64_t d, int64_t n, bool squared) {
    return std::min({kGramMax, n + 1, std::max(2 * d, squared ? std::min(4 * d, kGramNewtonMax) : 0)});
}
// Working-set rows with alpha 0 and a gradient above this (in margin units) are dropped. A
// row dropped too early is found again by the next round's check, but one kept costs its
// place in every solve: 0.01 rather than 0.05 made i.i.d. Gaussian data 7% faster (300
// queries: 9.7-9.8 s to 8.8-9.3 s), 0 to 0.01 measured the same, 0.2 and 1 were 40-70% slower,
// and the other data are unchanged within noise.
constexpr double kPruneGradient = 0.01;

struct Problem {
    const float* keys;
    const double* sq_norms;  // [n]: |x_i|^2
    const float* panels;     // the keys packed once for the decision values (cpu/scores.h)
    int64_t ldk, n, d;
    double B;
    DcdConstants dc;
    const EsvmParams* p;
    const Blas* blas;
    BufferPool* pool;  // the SVMs' Gram matrices and Newton factors
};

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

// The largest augmented key norm |[x, B]|: it scales the float32 GEMM error bound. (A plain
// double loop here was one dependent add per element: 8% of a call in ImageNet's shape.)
double max_augmented_norm(const Problem& P) {
    return std::sqrt(*std::max_element(P.sq_norms, P.sq_norms + P.n) + P.B * P.B);
}

// Starts the SVMs of one tile of queries: each working set begins with the keys nearest its
// query (from the inner products in F [tm, n] and the keys' norms) and is solved once.
void start_svms(const Problem& P, const float* queries, int64_t ldq, const int64_t* query_ids,
                std::vector<Svm>& svms, const float* F, int nt) {
    const EsvmParams& params = *P.p;
    parallel_for(int64_t(svms.size()), nt, [&](int64_t j) {
        Svm& s = svms[j];
        s.w.assign(P.d + 1, 0.0);
        s.alpha.assign(1, 0.0);
        s.in_ws.assign(P.n, 0);
        s.rng = SplitMix64(query_seed(params.seed, query_ids[j]));
        s.round_tol = std::max(params.tol, kLooseTol);
        s.K = PooledDoubles(P.pool);
        s.newton.chol.set_pool(P.pool);
        add_to_working_set(s, nearest(F + j * P.n, P.sq_norms, P.n, std::min(P.n, kInitialWorkingSet)));
        solve_working_set(P, queries + j * ldq, s);
    });
}

// A finished SVM keeps only w and its counters: its Gram matrix and Newton factor (up to
// tens of MiB each) go at once rather than when the whole tile is done.
void finish(Svm& s) {
    s.done = true;
    s.K.release();
    s.newton = NewtonWarm();
}

// One round of a live SVM, given its decision values f [n] over all keys (bias added here):
// it is done when no key outside the working set violates the margin at the final
// tolerance; else the violators join the working set and it is solved again.
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

// Decision values (without the bias) of the live SVMs over all keys, with one GEMM:
// F [live, n] = W [live, d] X^T, W rounded to float32 into W32 (cpu/scores.h).
void live_decision_values(const Problem& P, const std::vector<Svm>& svms, const std::vector<int64_t>& live,
                          std::vector<float>& W32, float* F, int nt) {
    const int64_t nl = int64_t(live.size());
    for (int64_t r = 0; r < nl; ++r)
        for (int64_t c = 0; c < P.d; ++c) W32[r * P.d + c] = float(svms[live[r]].w[c]);
    scores_packed(W32.data(), P.d, nl, P.panels, P.n, P.d, F, P.n, nt);
}

}  // namespace

void esvm_topk(const float* queries, int64_t ldq, int64_t m, const float* keys, int64_t ldk, int64_t n,
               int64_t d, const int64_t* key_ids, const int64_t* query_ids, const EsvmParams& params,
               const Blas& blas, TopkAccumulator& acc, int64_t row0, int64_t* n_iter, uint8_t* converged) {
    if (m == 0 || n == 0) return;
    const int nt = params.n_threads;
    // The pool packed once [ceil(n / 16)][d][16] for every GEMM of the call: our micro-kernel,
    // not BLAS, so a decision value depends on w and the key alone (and AVX-512 runs at
    // 1.2-1.45x OpenBLAS's AVX2 sgemm here, d = 256 to 784).
    std::unique_ptr<float[]> panels(
        new float[size_t((n + kNR - 1) / kNR * kNR * d)]);  // filled by pack_panels
    pack_panels(keys, ldk, n, d, panels.get(), nt);
    std::vector<double> sq_norms(static_cast<size_t>(n));
    row_sq_norms_f32(keys, ldk, n, d, sq_norms.data(), nt);  // the keys are finite: checked upstream
    BufferPool pool;  // declared before the SVMs: it outlives their buffers
    const Problem P{keys,
                    sq_norms.data(),
                    panels.get(),
                    ldk,
                    n,
                    d,
                    params.intercept_scaling,
                    dcd_constants(params.C, n, params.squared_hinge),
                    &params,
                    &blas,
                    &pool};
    const double max_norm = max_augmented_norm(P);

    // Queries are solved in tiles: a tile's decision values [tile, n] (at most 64 MiB), its
    // membership flags [tile, n] and its cached Gram matrices (each at most gram_rows_max^2
    // doubles, at most kGramTileBytes in all; usually a few MiB each) are the only buffers
    // that grow with the keys.
    const int64_t gram_max = gram_rows_max(d, n, params.squared_hinge);
    const int64_t tile = std::max<int64_t>(
        1, std::min<int64_t>(
               {m, (int64_t(1) << 24) / n, std::max<int64_t>(256, 8 * resolve_threads(nt)),
                std::max<int64_t>(2 * resolve_threads(nt), kGramTileBytes / (8 * gram_max * gram_max))}));
    std::vector<float> F, W32;
    for (int64_t t0 = 0; t0 < m; t0 += tile) {
        const int64_t tm = std::min(tile, m - t0);
        std::vector<Svm> svms(tm);
        F.resize(size_t(tm * n));
        W32.resize(size_t(tm * d));
        scores_packed(queries + t0 * ldq, ldq, tm, panels.get(), n, d, F.data(), n, nt);
        start_svms(P, queries + t0 * ldq, ldq, query_ids + t0, svms, F.data(), nt);
        std::vector<int64_t> live(tm);
        for (int64_t j = 0; j < tm; ++j) live[j] = j;
        while (!live.empty()) {
            const int64_t nl = int64_t(live.size());
            live_decision_values(P, svms, live, W32, F.data(), nt);
            parallel_for(nl, nt, [&](int64_t r) {
                refresh_svm(P, queries + (t0 + live[r]) * ldq, svms[live[r]], F.data() + r * n, max_norm);
            });
            // Finished queries hand over their decision values (from the GEMM just done,
            // i.e. from their final w); the rest go round again.
            std::vector<int64_t> next, finished;  // finished: positions r in this round
            for (int64_t r = 0; r < nl; ++r) (svms[live[r]].done ? finished : next).push_back(r);
            parallel_for(int64_t(finished.size()), nt, [&](int64_t f) {
                const int64_t r = finished[f], j = live[r];
                acc.push(row0 + t0 + j, 1, F.data() + r * n, n, key_ids, n, 1);
                n_iter[t0 + j] = svms[j].iters;
                converged[t0 + j] = svms[j].converged ? 1 : 0;
            });
            for (int64_t& r : next) r = live[r];
            live.swap(next);
        }
    }
}

}  // namespace simattr
