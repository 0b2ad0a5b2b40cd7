// Exact top-k with a bfloat16 first pass (CPU, AVX512-BF16).
//
// Every (query, key) pair is scored in bfloat16 with float32 accumulation, and each
// approximate score s~ comes with a rigorous bound E such that the float32 score s that the
// exact path computes satisfies |s - s~| <= E (proof in prefilter_cpu.cpp). A key can be in a
// query's top k only if s~ + E reaches the k-th best of the lower bounds s~ - E; only those
// candidates are re-scored, in float32 by the exact path's own micro-kernel, and offered to
// the accumulator. Every key of the exact top k (ties included) is among the candidates and
// gets the exact path's score bit for bit, so the result is identical to topk()'s.
#pragma once
#include <cstdint>

#include "cpu/topk.h"

namespace simattr {

// True when the CPU (and the OS) support AVX512-BF16 dot products.
bool bf16_prefilter_available();

// Same contract as topk() (cpu/topk.h). Requires bf16_prefilter_available(). Returns the
// number of candidates it re-scored in float32. With `keys_packed`, the keys are those of
// the calling thread's previous call, still unchanged, and their bfloat16 copy is reused
// (topk() sets it for the second half of one call, never across calls: a caller may refill
// the same memory with other keys).
int64_t topk_prefiltered(const float* queries, int64_t ldq, int64_t nq, const float* keys, int64_t ldk,
                         int64_t nb, int64_t d, const int64_t* ids, const float* key_sq_norms, Metric metric,
                         TopkAccumulator& acc, int64_t row0, int n_threads, bool keys_packed = false);

// For tests: the first pass's approximate score of one pair (q, x [d]), the bound E of its
// distance to the float32 score, and that score. Requires bf16_prefilter_available().
void prefilter_pair(const float* q, const float* x, int64_t d, float* approx, double* bound, float* exact);

// Statistics of the calls so far in this process (for benchmarks): pairs scored in bfloat16
// and candidates re-scored in float32.
struct PrefilterStats {
    int64_t pairs = 0, candidates = 0;
};
PrefilterStats prefilter_stats();
void reset_prefilter_stats();

}  // namespace simattr
