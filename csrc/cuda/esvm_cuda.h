// CUDA batched exemplar SVMs: one warp per query runs liblinear's dual coordinate descent
// (same maths as the CPU solver, dcd_math.h) over its class's keys, with shrinking; every
// class of a batch in one launch per solver form (primal or Gram, see esvm_uses_gram).
#pragma once
#include <cstdint>

#include "common/esvm_params.h"
#include "common/views.h"
#include "cuda/topk_cuda.h"

namespace simattr::cuda {

// Which solver a class of n keys in d dimensions gets. Gram form (esvm_gram_cuda.cu) when the
// pool is small against d: a coordinate visit then reads one margin and an update adds one
// row of n + 1, where the primal form reads (and on update writes) two rows of d. The
// margins must fit one warp's shared memory on every GPU since Turing (64 KiB: 8,192 slots).
// `form` overrides the choice (SIMATTR_CUDA_ESVM=primal|gram, for tests and benchmarks).
constexpr int64_t kGramMaxSlots = 8192;
enum class EsvmForm : int { Auto = 0, Primal = 1, Gram = 2 };
inline bool esvm_uses_gram(int64_t n, int64_t d, EsvmForm form) {
    if (form == EsvmForm::Primal || n + 1 > kGramMaxSlots) return false;
    return form == EsvmForm::Gram || n + 1 <= 2 * d;
}

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
