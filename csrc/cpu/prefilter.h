// Exact top-k with a bfloat16 first pass (CPU, AVX512-BF16).
//
// Every (query, key) pair is scored in bfloat16 with float32 accumulation, and each
// approximate score s~ comes with a rigorous bound E such that the float32 score s that the
// exact path computes satisfies |s - s~| <= E (proof in prefilter_bound.h). A key can be in a
// query's top k only if s~ + E reaches a floor: a value at most the k-th best score (at first
// from the lower bounds s~ - E, then from exact scores). Only those candidates are re-scored,
// in float32 by the exact path's own arithmetic, and offered to the accumulator. Every key of the exact top k
// (ties included) is among the candidates and gets the exact path's score bit for bit, so the result is
// identical to topk()'s.
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

// For tests: how the first pass sees one pair (q, x [d]). Requires bf16_prefilter_available().
struct PairBounds {
    float approx = 0, exact = 0;  // the approximate and the float32 score
    double bound = 0;             // E, the bound of their distance (proved in prefilter_bound.h)
    float up = 0, lo = 0;         // the vectorised filter's bounds of the float32 score
    float sq = 0;                 // |x|^2 in float, and the filter's bounds of the L2 score
    float up_l2 = 0, lo_l2 = 0;   // 2 exact - sq
};
PairBounds prefilter_pair(const float* q, const float* x, int64_t d);

// Statistics of the calls so far in this process (for benchmarks): pairs scored in bfloat16
// and candidates re-scored in float32.
struct PrefilterStats {
    int64_t pairs = 0, candidates = 0;
};
PrefilterStats prefilter_stats();
void reset_prefilter_stats();

}  // namespace simattr
