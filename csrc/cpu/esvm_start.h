// Where an exemplar SVM's working set starts. Internal to esvm_cpu.cpp.
//
// By default from the key rows nearest the query (nearest, esvm_working_set.h). Where support
// vectors crowd near a pool's queries (lda_start_pays), from the rows an LDA direction ranks
// highest instead
// (exemplar-LDA, Hariharan, Malik and Ramanan 2012): w0 = (S + lambda tr(S) / d I)^-1 (q - mu),
// mu and S the pool's mean and covariance. On the main job (Fashion-MNIST's SimCLR embedding,
// ~176 support vectors per SVM) 70% of the 96 rows it ranks highest are support vectors in the
// end, against 50% of the 96 nearest; started from them the SVMs need 4.0 rounds instead of
// 6.0. Where few support vectors lie near the query (working sets ending at ~50-110 rows, few
// of them among either start's) a start that large only costs.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "cpu/blas.h"
#include "cpu/cholesky.h"

namespace simattr {
namespace esvm_detail {

class LdaStart {
public:
    // Rows of the pool the covariance is estimated from (at an even stride): its factor is
    // only a heuristic's, and the regularisation dominates its small eigenvalues anyway (on
    // the main job 256 rows start the SVMs as well as 2,048).
    static constexpr int64_t kSampleRows = 256;
    // lambda: 0.25 to 1 gave the same rounds on the main job; 0.001 as few good rows as the
    // nearest start, 10 fewer.
    static constexpr double kRidge = 0.5;

    // Fits mu (over all n rows) and the factor of S + lambda tr(S) / d I (S from at most
    // kSampleRows rows) for the pool keys [n, d] (row stride ldk). Returns false, with
    // nothing fitted, where that matrix is not numerically SPD (e.g. every key the same).
    bool fit(const float* keys, int64_t ldk, int64_t n, int64_t d, const Blas& blas);
    // W [m, d] (row stride d): the direction w0 of each query of queries [m, d] (stride ldq),
    // rounded to float32 for the scoring micro-kernel. Needs a successful fit.
    void directions(const float* queries, int64_t ldq, int64_t m, float* W, int n_threads) const;
    int64_t dim() const { return d_; }
    void clear() { d_ = 0; }

private:
    std::vector<double> mu_;
    GrowingCholesky chol_;
    int64_t d_ = 0;
};

// The `count` rows of largest f [n], largest first (ties: lower row first; -0 ties +0).
std::vector<int64_t> top_rows(const float* f, int64_t n, int64_t count);

// The pool keys [n, d] (row stride ldk), their squared norms sq_norms [n] and their packed
// panels (cpu/scores.h), as the pilot below reads them.
struct Pool {
    const float* keys;
    int64_t ldk, n, d;
    const double* sq_norms;
    const float* panels;
};

constexpr int64_t kPilots = 4;

// Solves SVMs with the nearest start for queries [kPilots, d] (stride d; their ids: the key
// rows they are) and writes each one's final decision values f [kPilots, n], bias included.
using RunPilots = std::function<void(const float* queries, const int64_t* ids, float* f)>;

// Whether the LDA start pays for this pool, judged by a pilot: kPilots SVMs, each with one of
// the pool's own keys as its query (their working sets end close to real queries': main job
// 184 rows against 176, i.i.d. Gaussian 466 against 462, embedding-like data 64 against 47).
// It pays where support vectors crowd the start, so both tests compare how many of a start's
// `rows` rows end as support vectors (f > -1), medians over the pilots: at least half of the
// nearest rows must (main job: 65%, i.i.d. Gaussian 72-79%; embedding-like and clustered data
// 18-36%), and at least as many of the LDA ones (81%, 81-86%). Fits `lda` on the way (and
// leaves it fitted only when the answer is yes). The answer depends on the keys alone, so a
// query's result does not depend on the others in its call.
bool lda_start_pays(const Pool& pool, int64_t rows, const Blas& blas, int n_threads, const RunPilots& run,
                    LdaStart& lda);

}  // namespace esvm_detail
}  // namespace simattr
