// The AVX-512 inner loops of the bfloat16 first pass (cpu/prefilter.h). Callers check
// bf16_prefilter_available() first: these are compiled for AVX-512 only.
#pragma once
#include <cstdint>

namespace simattr {

// The per-query factors of the float test: E <= dx * key dx + xt * key xt + x * key x + abs.
struct QueryFactors {
    float dx, xt, x, abs;
};

// Local indices j < n (into out, ascending) whose upper bound may reach `floor`: approximate
// scores a [n], the keys' inflated |x - x~|, |x~|, |x| (dx, xt, x [n]) and, for L2, their
// squared norms sq [n] (else null). A float test that never drops a key the double bound keeps
// (prefilter_cpu.cpp): every float term is inflated by 2^-20 or more, and 2^-21 of the score
// terms' magnitude covers the roundings of the sums. NaN and infinities pass. Returns the count.
int64_t float_filter(const float* a, int64_t n, const QueryFactors& f, const float* dx, const float* xt,
                     const float* x, const float* sq, double floor, int64_t* out);

// Exact float32 scores out[j] = q . keys[rows[j]] for j < n (q [d]; keys row-major, row stride
// ldk): for each key one multiply-add per feature, in feature order from zero, which is what
// a lane of topk()'s micro-kernel does in its AVX-512 clone (its `acc += q[c] * p` is
// contracted to vfmadd231ps), so the scores are that path's bit for bit. Sixteen keys at a
// time, their rows transposed in registers 16 features at a time.
void score_candidates(const float* q, const float* keys, int64_t ldk, const int64_t* rows, int64_t n,
                      int64_t d, float* out);

}  // namespace simattr
