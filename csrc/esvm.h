// Batched exemplar SVMs: one linear SVM per query (the query the only positive, the shared
// pool the negatives), solved by liblinear's dual coordinate descent, ranked by decision value.
#pragma once
#include <cstdint>

#include "blas.h"
#include "topk.h"

namespace simattr {

struct EsvmParams {
    double C = 0.1;
    bool squared_hinge = true;       // false: hinge (L1) loss
    double intercept_scaling = 1.0;  // the constant feature B appended to every row
    double tol = 1e-6;               // liblinear eps: stop when max PG - min PG <= tol
    int64_t max_iter = 10000;        // sweeps over the (shrunk) coordinates, per query
    uint64_t seed = 0;               // permutation seed; combined with each query's id
    int n_threads = 0;               // <= 0: all available
};

inline EsvmParams esvm_params(double C, bool squared_hinge, double intercept_scaling, double tol,
                              int64_t max_iter, uint64_t seed, int n_threads = 0) {
    EsvmParams p;
    p.C = C;
    p.squared_hinge = squared_hinge;
    p.intercept_scaling = intercept_scaling;
    p.tol = tol;
    p.max_iter = max_iter;
    p.seed = seed;
    p.n_threads = n_threads;
    return p;
}

// Solves one exemplar SVM per query and offers each query's decision values over the pool
// to `acc` rows row0 .. row0+m.
//   queries  [m, d] float32, row stride ldq (the positives)
//   pool     [n, d] float32, row stride ldp (the shared negatives)
//   pool_ids [n]  ids reported for the pool rows (e.g. global training indices)
//   query_ids [m] ids that seed each query's permutation (results do not depend on batching)
//   n_iter   [m]  out: sweeps used;  converged [m] out: 1 when the tolerance was met.
//
// Strategy: liblinear's sweeps run only over a per-query working set (the positive plus the
// negatives that violate, or nearly violate, the margin). Gradients of all pool rows are
// recomputed for many queries at once with one GEMM; rows that violate are added and the
// sweeps resume, until none is left outside. This reaches liblinear's optimum (all
// coordinates satisfy its stopping rule) while the sequential work touches only the few
// rows that end up as support vectors.
void esvm_topk(const float* queries, int64_t ldq, int64_t m, const float* pool, int64_t ldp,
               int64_t n, int64_t d, const int64_t* pool_ids, const int64_t* query_ids,
               const EsvmParams& params, const Blas& blas, TopkAccumulator& acc, int64_t row0,
               int64_t* n_iter, uint8_t* converged);

}  // namespace simattr
