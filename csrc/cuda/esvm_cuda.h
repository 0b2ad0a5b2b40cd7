// CUDA batched exemplar SVMs: one warp per query runs liblinear's dual coordinate descent
// (same maths as the CPU solver, dcd_math.h) over the query's whole keys, with shrinking.
#pragma once
#include <cstdint>

#include "common/esvm_params.h"
#include "common/views.h"
#include "cuda/topk_cuda.h"

namespace simattr::cuda {

// queries: device [*, d] rows query_rows[0..m) (device int64); keys: device [*, d] rows
// key_rows[0..n) (device int64), float32 or float16, row-major contiguous.
// query_ids [m] (host) seed the permutations. Decision values over the keys are offered to
// acc rows row0..row0+m with ids key_rows (so acc.max_cols() >= n).
// n_iter [m], converged [m]: host outputs.
void esvm_topk(const void* queries, DType qtype, const int64_t* query_rows, int64_t m, const void* keys,
               DType ktype, const int64_t* key_rows, int64_t n, int64_t d, const int64_t* query_ids,
               const EsvmParams& params, TopkAccumulatorCuda& acc, int64_t row0, int64_t* n_iter,
               uint8_t* converged);

}  // namespace simattr::cuda
