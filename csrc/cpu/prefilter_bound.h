// The rounding bound of the bfloat16 first pass (cpu/prefilter.h) and the norms it is built
// from. Internal to prefilter_cpu.cpp.
//
// Why the candidates are enough (the bound). Let q, x be float32 vectors of length d, s the
// float32 score the exact micro-kernel computes, and s~ the first pass's score. VDPBF16PS reads
// q~ and x~: each element rounded to bfloat16 (round to nearest even), a bfloat16 denormal read
// as zero. Write dq = q - q~ and dx = x - x~ (both known exactly: we round the same way). Then
//   q.x - q~.x~ = q.dx + dq.x~,   so   |q.x - q~.x~| <= |q| |dx| + |dq| |x~|   (Cauchy-Schwarz).
// The products q~_c x~_c are exact in float32 (8-bit significands multiply into 16 bits) unless
// they fall below 2^-126, where the instruction flushes them (an error of at most 2^-126 each);
// the float32 sum (unit roundoff v = 2^-24, at most d' = d + 1 roundings per lane, d' counting
// the zero that pads an odd d, each flushed partial sum off by at most 2^-126) is within
// g(d') sum_c |q~_c x~_c| <= g(d') |q~| |x~| of the exact sum, g(n) = n v / (1 - n v). The exact
// path's s (one multiply-add per element, at most 2d roundings; gradual underflow at most
// 2^-149 per operation) is within g(2d) |q| |x| + 2d 2^-149 of the real q.x. So
//   |s - s~| <= E = |q| |dx| + |dq| |x~| + g(d') |q~| |x~| + g(2d) |q| |x| + 3 d' 2^-126.
// Typical |dx| is near 2^-8 / sqrt(3) |x| (not the worst case 2^-8 |x|), so E is about half of
// the plain 2 * 2^-8 |q| |x| bound, and so is the band of candidates it leaves. An element that
// overflows bfloat16 makes s~ non-finite; such a pair is always a candidate. E is evaluated in
// double from norms computed in double and rounded up, then inflated by 2^-30 of itself, far
// more than the rounding of that evaluation (pair_bound; the tests' reference). bound_filter
// evaluates it in float, from factors rounded up with 2^-20 of margin (inflated,
// query_factors), and widens the interval by 2^-16 of E and 2^-21 of the score terms'
// magnitude, more than its own roundings: its [lo, up] always holds [s~ - E, s~ + E]
// (tests/cpp/test_prefilter_bound.cpp checks both on adversarial pairs).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "cpu/prefilter_kernels.h"

namespace simattr {
namespace prefilter_detail {

// bfloat16 bits of f, rounded to nearest even (inputs are finite; huge ones round to inf).
inline uint32_t bf16_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return u >> 16;
}

// The float a bfloat16 stands for, given its bits in the high half of `bits` (the low half is
// ignored): the inverse of bf16_bits, denormals kept.
inline float bf16_value(uint32_t bits) {
    bits &= 0xffff0000u;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// Row `src` [d] as d' / 2 pairs of bfloat16 (element 2c in the low half), zero-padded.
inline void pack_pairs(const float* src, int64_t d, uint32_t* dst, int64_t stride) {
    for (int64_t c = 0; c < d / 2; ++c)
        dst[c * stride] = bf16_bits(src[2 * c]) | (bf16_bits(src[2 * c + 1]) << 16);
    if (d % 2) dst[(d / 2) * stride] = bf16_bits(src[d - 1]);
}

struct Bound {
    double gd, g2d;  // g(d') and g(2d)
    double abs;      // 3 d' 2^-126
};

inline Bound make_bound(int64_t d) {
    const double v = std::ldexp(1.0, -24), dp = double(d + d % 2);
    auto g = [v](double n) { return n * v / (1.0 - n * v); };
    return Bound{g(dp), g(2.0 * d), 3 * dp * std::ldexp(1.0, -126)};
}

// The norms of a row the bound needs, each rounded up: |x|, |x - x~| and |x~|.
struct Norms {
    double x = 0, dx = 0, xt = 0;
};

inline Norms row_norms(const float* x, int64_t d) {
    Norms n;
    for (int64_t c = 0; c < d; ++c) {
        const uint32_t bits = bf16_bits(x[c]) << 16;
        float xt = bf16_value(bits);
        if ((bits & 0x7f800000u) == 0) xt = 0.f;      // a bfloat16 denormal reads as zero
        const double xc = x[c], e = xc - double(xt);  // exact: xt is xc rounded to 8 bits
        n.x += xc * xc;
        n.dx += e * e;
        n.xt += double(xt) * double(xt);
    }
    const double up = 1 + std::ldexp(1.0, -40);
    n.x = std::sqrt(n.x) * up;
    n.dx = std::sqrt(n.dx) * up;
    n.xt = std::sqrt(n.xt) * up;
    return n;
}

// E for a query and a key (see the proof at the top), in double.
inline double pair_bound(const Bound& bd, const Norms& q, const Norms& x) {
    return (q.x * x.dx + q.dx * x.xt + bd.gd * q.xt * x.xt + bd.g2d * q.x * x.x + bd.abs) *
           (1 + std::ldexp(1.0, -30));
}

// Rounds up a non-negative double to a float that is at least it.
inline float float_up(double x) {
    float f = float(x);
    return double(f) >= x ? f : std::nextafter(f, std::numeric_limits<float>::infinity());
}

inline float inflated(double v) {
    return float_up(v * (1 + std::ldexp(1.0, -20)));
}

inline QueryFactors query_factors(const Bound& bd, const Norms& q) {
    return QueryFactors{inflated(q.x), inflated(q.dx + bd.gd * q.xt), inflated(bd.g2d * q.x),
                        inflated(bd.abs)};
}

}  // namespace prefilter_detail
}  // namespace simattr
