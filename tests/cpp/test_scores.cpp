// scores_packed against a plain loop: each score must be the chain of d multiply-adds in
// feature order, bit for bit (fused where the CPU has FMA, as the kernel's clones are), for
// odd row, key and feature counts (short row groups and panels), row strides wider than d,
// and one or two threads.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/scores.h"

using namespace simattr;

namespace {

float chain(const float* a, const float* x, int64_t d, bool fused) {
    float acc = 0.f;
    for (int64_t c = 0; c < d; ++c) {
        if (fused) {
            acc = std::fma(a[c], x[c], acc);
        } else {
            const volatile float p = a[c] * x[c];  // rounded on its own, as without FMA
            acc = acc + p;
        }
    }
    return acc;
}

bool same_bits(float a, float b) {
    return std::memcmp(&a, &b, sizeof(float)) == 0;
}

}  // namespace

int main() {
#if defined(__x86_64__) && defined(__GNUC__)
    const bool fused = __builtin_cpu_supports("fma");
#else
    const bool fused = true;
#endif
    std::mt19937_64 rng(11);
    std::normal_distribution<float> normal;
    for (int64_t m : {1, 3, 8, 97})
        for (int64_t n : {1, 3, 17, 1025})
            for (int64_t d : {1, 3, 97}) {
                const int64_t lda = d + 5, ldk = d + 2, ldo = n + 3;
                std::vector<float> a(size_t(m * lda)), keys(size_t(n * ldk));
                for (float& v : a) v = normal(rng);
                for (float& v : keys) v = normal(rng);
                std::vector<float> panels(size_t((n + kNR - 1) / kNR * kNR * d));
                pack_panels(keys.data(), ldk, n, d, panels.data());
                for (int threads : {1, 2}) {
                    std::vector<float> out(size_t(m * ldo), -7.f);
                    scores_packed(a.data(), lda, m, panels.data(), n, d, out.data(), ldo, threads);
                    for (int64_t i = 0; i < m; ++i) {
                        for (int64_t j = 0; j < n; ++j)
                            CHECK(same_bits(out[i * ldo + j], chain(&a[i * lda], &keys[j * ldk], d, fused)));
                        for (int64_t j = n; j < ldo; ++j)
                            CHECK(out[i * ldo + j] == -7.f);  // padding untouched
                    }
                }
            }
    std::puts("test_scores: ok");
    return 0;
}
