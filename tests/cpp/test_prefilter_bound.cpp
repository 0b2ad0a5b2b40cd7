// The bfloat16 first pass's rounding bound (csrc/cpu/prefilter_bound.h), checked pair by pair:
// |float32 score - approximate score| <= E on adversarial vectors, E is not vacuous, and the
// vectorised filter's float bounds hold the float32 score (inner product and L2) too.
// Skipped (exit 0) on CPUs without AVX512-BF16.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/prefilter.h"

using namespace simattr;

namespace {
double worst_ratio = 0.0;  // largest |error| / E seen

void check_pair(const std::vector<float>& q, const std::vector<float>& x, bool normal_range = true) {
    const int64_t d = int64_t(q.size());
    const PairBounds pb = prefilter_pair(q.data(), x.data(), d);
    const double exact = pb.exact, approx = pb.approx, bound = pb.bound;
    const double err = std::fabs(exact - approx);
    CHECK(pb.lo <= pb.exact && pb.exact <= pb.up);
    if (std::isfinite(pb.sq)) {
        const float l2 = 2.f * pb.exact - pb.sq;  // as the exact path's to_l2
        CHECK(pb.lo_l2 <= l2 && l2 <= pb.up_l2);
    }
    double nq = 0, nx = 0;
    for (int64_t c = 0; c < d; ++c) nq += double(q[c]) * q[c], nx += double(x[c]) * x[c];
    CHECK(err <= bound);
    // Where no element is flushed, E is no looser than twice the plain 2 * 2^-8 |q| |x|. (A
    // flushed element is lost whole: the plain bound does not hold, E does.)
    if (normal_range) CHECK(bound <= 4 * std::ldexp(1.0, -8) * std::sqrt(nq * nx));
    if (bound > 0) worst_ratio = std::fmax(worst_ratio, err / bound);
}
}  // namespace

int main() {
    if (!bf16_prefilter_available()) {
        std::puts("test_prefilter_bound: skipped (no AVX512-BF16)");
        return 0;
    }
    std::mt19937_64 gen(7);
    std::normal_distribution<float> normal;
    std::uniform_real_distribution<float> unit(0.f, 1.f);
    for (int64_t d : {1, 3, 16, 97, 512, 1025}) {
        std::vector<float> q(static_cast<size_t>(d)), x(static_cast<size_t>(d));
        for (int rep = 0; rep < 200; ++rep) {
            for (int64_t c = 0; c < d; ++c) q[c] = normal(gen), x[c] = normal(gen);
            check_pair(q, x);
            // Every element just below a bfloat16 rounding midpoint, all with the same sign: all
            // rounding errors align, the case Cauchy-Schwarz is tight for.
            for (int64_t c = 0; c < d; ++c) {
                const float m = 1.f + std::ldexp(1.f, -8) * (1.f - std::ldexp(1.f, -14)) +
                                std::ldexp(2.f, -7) * float(rep % 7);
                q[c] = m * std::ldexp(1.f, int(c % 5));
                x[c] = m;
            }
            check_pair(q, x);
            // Mixed magnitudes, tiny values in bfloat16's denormal range, exact zeros.
            for (int64_t c = 0; c < d; ++c) {
                const float u = unit(gen);
                q[c] = u < 0.2f ? 1e-39f * normal(gen) : (u < 0.3f ? 0.f : normal(gen) * 1e15f);
                x[c] = u > 0.7f ? 1e-39f * normal(gen) : normal(gen) * 1e-15f;
            }
            check_pair(q, x, false);
        }
    }
    CHECK(worst_ratio > 0.05);  // the adversarial cases come near the bound: it is not vacuous
    std::printf("test_prefilter_bound: ok (worst |error| / bound %.3f)\n", worst_ratio);
    return 0;
}
