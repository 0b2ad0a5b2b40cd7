#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/parallel.h"
#include "cpu/esvm.h"
#include "cpu/esvm_round.h"
#include "cpu/esvm_start.h"
#include "cpu/rows.h"
#include "cpu/scores.h"

namespace simattr {

namespace {

using namespace esvm_detail;

// The working set starts from the 32 key rows nearest the query in Euclidean distance (not
// by inner product: with keys of unequal norms, the main job's support vectors lie among the
// nearest by distance, 53% of them within as many rows, against 13% by inner product; 6.6
// rounds became 5.8 and the main job 6-8% faster).
constexpr int64_t kInitialWorkingSet = 32;
// Where a pilot finds that it pays (cpu/esvm_start.h), a pool's SVMs start from the
// kLdaStartRows rows an LDA direction ranks highest instead. Main job: 6.0 rounds a query
// became 4.0, and 96 rows rather than 64 or 128 was fastest.
constexpr int64_t kLdaStartRows = 96, kLdaMinPool = 16;
// The Gram matrices of one tile of SVMs may hold this much at most (each SVM's matrix is kept
// between rounds): tiles shrink where the largest possible matrix is big (d >= 1024 with
// large pools), and keep the full batch everywhere else.
constexpr int64_t kGramTileBytes = int64_t(2) << 30;

// How the working sets of a call start: from the `rows` keys nearest each query (lda null) or
// ranked highest by its LDA direction.
struct Start {
    const LdaStart* lda = nullptr;
    int64_t rows = kInitialWorkingSet;
};

// Starts the SVMs of one tile of queries: each working set begins with `start`'s rows (from
// F [tm, n]: the queries' inner products with the keys, or their LDA directions' scores) and
// is solved once.
void start_svms(const Problem& P, const Start& start, const float* queries, int64_t ldq,
                const int64_t* query_ids, std::vector<Svm>& svms, const float* F, int nt) {
    parallel_for(int64_t(svms.size()), nt, [&](int64_t j) {
        const int64_t rows = std::min(P.n, start.rows);
        start_svm(P, queries + j * ldq, query_seed(P.p->seed, query_ids[j]),
                  start.lda != nullptr ? top_rows(F + j * P.n, P.n, rows)
                                       : nearest(F + j * P.n, P.sq_norms, P.n, rows),
                  svms[j]);
    });
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

// A finished SVM, at position j of its tile, with its decision values f [n] (from its final w).
using OnFinish = std::function<void(int64_t j, const Svm& s, const float* f)>;

// Solves the SVMs of one tile of tm queries (ids query_ids) to the end, in rounds: one GEMM
// gives every live SVM's decision values, then each is refreshed (cpu threads). F [tm, n] and
// W32 [tm, d] are the caller's, reused from tile to tile.
void solve_tile(const Problem& P, const Start& start, const float* queries, int64_t ldq, int64_t tm,
                const int64_t* query_ids, std::vector<float>& F, std::vector<float>& W32, double max_norm,
                const OnFinish& on_finish) {
    const int nt = P.p->n_threads;
    std::vector<Svm> svms(tm);
    F.resize(size_t(tm * P.n));
    W32.resize(size_t(tm * P.d));
    const float* first = queries;  // what the first GEMM scores the pool with
    int64_t ld_first = ldq;
    if (start.lda != nullptr) {
        start.lda->directions(queries, ldq, tm, W32.data(), nt);
        first = W32.data();
        ld_first = P.d;
    }
    scores_packed(first, ld_first, tm, P.panels, P.n, P.d, F.data(), P.n, nt);
    start_svms(P, start, queries, ldq, query_ids, svms, F.data(), nt);
    std::vector<int64_t> live(tm);
    for (int64_t j = 0; j < tm; ++j) live[j] = j;
    while (!live.empty()) {
        const int64_t nl = int64_t(live.size());
        live_decision_values(P, svms, live, W32, F.data(), nt);
        parallel_for(nl, nt, [&](int64_t r) {
            refresh_svm(P, queries + live[r] * ldq, svms[live[r]], F.data() + r * P.n, max_norm);
        });
        // Finished queries hand over their decision values (from the GEMM just done, i.e.
        // from their final w); the rest go round again.
        std::vector<int64_t> next, finished;  // finished: positions r in this round
        for (int64_t r = 0; r < nl; ++r) (svms[live[r]].done ? finished : next).push_back(r);
        parallel_for(int64_t(finished.size()), nt, [&](int64_t f) {
            const int64_t r = finished[f];
            on_finish(live[r], svms[live[r]], F.data() + r * P.n);
        });
        for (int64_t& r : next) r = live[r];
        live.swap(next);
    }
}

enum class StartMode { kAuto, kNearest, kLda };
std::atomic<StartMode> g_start_mode{StartMode::kAuto};  // set_esvm_start

// The start of a pool's SVMs (cpu/esvm_start.h). Only pools of at least kLdaMinPool d keys
// are judged: elsewhere the pilot and the LDA direction's d x d factor cost too much against
// the rounds' scoring of the pool (with 8 d, the clustered data at d = 512, 5,000 keys a class
// and 100 queries, got 8% slower for the pilot and chose the nearest start anyway).
Start choose_start(const Problem& P, LdaStart& lda, std::vector<float>& F, std::vector<float>& W32,
                   double max_norm) {
    const StartMode mode = g_start_mode.load();
    if (mode == StartMode::kNearest || (mode == StartMode::kAuto && P.n < kLdaMinPool * P.d)) return Start{};
    const auto run = [&](const float* pilots, const int64_t* ids, float* f) {
        solve_tile(P, Start{}, pilots, P.d, kPilots, ids, F, W32, max_norm,
                   [&](int64_t j, const Svm&, const float* fj) { std::copy(fj, fj + P.n, f + j * P.n); });
    };
    const Pool pool{P.keys, P.ldk, P.n, P.d, P.sq_norms, P.panels};
    const bool pays = mode == StartMode::kLda
                          ? lda.fit(P.keys, P.ldk, P.n, P.d, *P.blas)
                          : lda_start_pays(pool, kLdaStartRows, *P.blas, P.p->n_threads, run, lda);
    return pays ? Start{&lda, kLdaStartRows} : Start{};
}

}  // namespace

void set_esvm_start(const char* name) {
    const std::string s(name);
    if (s != "auto" && s != "nearest" && s != "lda")
        throw std::invalid_argument("esvm start: expected one of auto, nearest, lda; got '" + s + "'");
    g_start_mode = s == "auto" ? StartMode::kAuto : s == "nearest" ? StartMode::kNearest : StartMode::kLda;
}

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
    LdaStart lda;
    const Start start = choose_start(P, lda, F, W32, max_norm);
    for (int64_t t0 = 0; t0 < m; t0 += tile) {
        const int64_t tm = std::min(tile, m - t0);
        solve_tile(P, start, queries + t0 * ldq, ldq, tm, query_ids + t0, F, W32, max_norm,
                   [&](int64_t j, const Svm& s, const float* f) {
                       acc.push(row0 + t0 + j, 1, f, n, key_ids, n, 1);
                       n_iter[t0 + j] = s.iters;
                       converged[t0 + j] = s.converged ? 1 : 0;
                   });
    }
}

}  // namespace simattr
