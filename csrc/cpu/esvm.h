// Batched exemplar SVMs: one linear SVM per query (the query the only positive, the shared
// keys the negatives), solved by liblinear's dual coordinate descent, ranked by decision value.
#pragma once
#include <cstdint>

#include "common/esvm_params.h"
#include "cpu/blas.h"
#include "cpu/topk.h"

namespace simattr {

// Solves one exemplar SVM per query and offers each query's decision values over the keys
// to `acc` rows row0 .. row0+m.
//   queries  [m, d] float32, row stride ldq (the positives)
//   keys     [n, d] float32, row stride ldk (the shared negatives)
//   key_ids [n]  ids reported for the key rows (e.g. global training indices)
//   query_ids [m] ids that seed each query's permutation (results do not depend on batching)
//   n_iter   [m]  out: sweeps used;  converged [m] out: 1 when the tolerance was met.
//
// Strategy: liblinear's sweeps run only over a per-query working set (the positive plus the
// negatives that violate, or nearly violate, the margin). Gradients of all key rows are
// recomputed for many queries at once with one GEMM; rows that violate are added and the
// sweeps resume, until none is left outside. This reaches liblinear's optimum (all
// coordinates satisfy its stopping rule) while the sequential work touches only the few
// rows that end up as support vectors.
void esvm_topk(const float* queries, int64_t ldq, int64_t m, const float* keys, int64_t ldk, int64_t n,
               int64_t d, const int64_t* key_ids, const int64_t* query_ids, const EsvmParams& params,
               const Blas& blas, TopkAccumulator& acc, int64_t row0, int64_t* n_iter, uint8_t* converged);

// For tests and benchmarks: how the SVMs' working sets start, "auto" (the default: from the
// keys nearest each query, or, where a pilot finds support vectors crowding near a pool's
// queries, from the keys an LDA direction ranks highest; cpu/esvm_start.h), "nearest" or
// "lda". Throws std::invalid_argument on any other name.
void set_esvm_start(const char* name);

}  // namespace simattr
