// The AVX-512 inner loops of the bfloat16 first pass (cpu/prefilter.h). Callers check
// bf16_prefilter_available() first: these are compiled for AVX-512 only.
#pragma once
#include <cstdint>

namespace simattr {

// out[8, 32] (row stride ldo) = 8 query rows (bfloat16 pairs [8][dp], row stride dp) . two
// adjacent panels of 16 keys ([dp][16] pairs each), accumulated in float32 by VDPBF16PS.
// Needs AVX512-BF16.
void bf16_micro(const uint32_t* q, int64_t dp, const uint32_t* panels, float* out, int64_t ldo);

// The per-query factors of the float test: E <= dx * key dx + xt * key xt + x * key x + abs.
struct QueryFactors {
    float dx, xt, x, abs;
};

// The keys j < n whose upper bound may reach `floor`: idx[c] = j (ascending) and up[c] >= the
// float32 score of the pair, for c < the returned count; and the lower bounds that reach
// `floor` (lo[c] <= that score, *n_lo of them, only these can raise the floor). a [n] are the
// approximate scores, dx, xt, x [n] the keys' inflated |x - x~|, |x~|, |x| and, for L2, sq [n]
// their squared norms (else null); scores and bounds are then in L2 units (2 q.x - |x|^2).
// Every float term is inflated by 2^-20 or more, and 2^-21 of the score terms' magnitude
// covers the roundings of the sums, so the bounds hold what the double bound E of
// prefilter_bound.h proves. A pair whose score or bound is not finite gets up = +inf and
// lo = -inf: it always passes. idx, up and lo need n + 16 entries (whole vectors are stored).
int64_t bound_filter(const float* a, int64_t n, const QueryFactors& f, const float* dx, const float* xt,
                     const float* x, const float* sq, float floor, int32_t* idx, float* up, float* lo,
                     int64_t* n_lo);

// Exact float32 scores out[j] = q . keys[rows[j]] for j < n (q [d]; keys row-major, row stride
// ldk): for each key one multiply-add per feature, in feature order from zero, which is what
// a lane of the scoring micro-kernel (cpu/scores.h) does in its AVX-512 and FMA clones (its
// `acc += q[c] * p` is contracted to one fused multiply-add), so the scores are that path's
// bit for bit. Keys go sixteen to a vector, their rows transposed in registers 16 features at
// a time, and two vectors at a time so that one chain's latency hides behind the other's
// shuffles.
void score_candidates(const float* q, const float* keys, int64_t ldk, const int64_t* rows, int64_t n,
                      int64_t d, float* out);

}  // namespace simattr
