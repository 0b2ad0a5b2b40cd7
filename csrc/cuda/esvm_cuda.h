// CUDA batched exemplar SVMs: one warp per query runs liblinear's dual coordinate descent
// (same maths as the CPU solver, dcd_math.h) over its class's keys, with shrinking; every
// class of a batch in one launch per solver form (primal or Gram, see esvm_uses_gram).
#pragma once
#include <cstdint>

#include "common/esvm_params.h"
#include "common/views.h"
#include "cuda/esvm_gram_plan.h"
#include "cuda/topk_cuda.h"

namespace simattr::cuda {

// One launch solves the exemplar SVMs of every query of a batch, whatever its class.
// queries: device [*, d] rows query_rows[0..m) (device int64), grouped by class in class order;
// query_class [m] (device int32) and host_query_class [m] (host copy) index the classes.
// keys: device [*, d] rows key_rows (device int64); class c's keys are
// key_rows[host_key_offsets[c] .. host_key_offsets[c + 1]) (host int64 [n_classes + 1]), none
// empty for a class that has queries. float32 or float16, row-major contiguous.
// query_ids [m] (host) seed the permutations. Query j's decision values over its class's keys
// are offered to acc row j with the key rows as ids (acc.rows() >= m, acc.max_cols() >= the
// largest class). n_iter [m], converged [m]: host outputs. Each class is solved in the form
// esvm_uses_gram(n_c, d, form) picks; SIMATTR_CUDA_ESVM=gram with a class of 8,192 keys or
// more is refused.
void esvm_topk(const void* queries, DType qtype, const int64_t* query_rows, const int32_t* query_class,
               const int32_t* host_query_class, int64_t m, const void* keys, DType ktype,
               const int64_t* key_rows, const int64_t* host_key_offsets, int64_t n_classes, int64_t d,
               const int64_t* query_ids, const EsvmParams& params, EsvmForm form, TopkAccumulatorCuda& acc,
               int64_t* n_iter, uint8_t* converged);

}  // namespace simattr::cuda
