// gram_aug_f32 (csrc/cpu/gram.h) against a plain double loop: every entry of the new rows and
// their mirror equals x_i . x_j + B^2 up to the order of the double sum, K stays exactly
// symmetric, and the block computed before (rows and columns < row0) is left untouched; for
// odd row counts and feature counts (blocks of 4 rows cut short, features past the last 8).
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/gram.h"

using namespace simattr;

int main() {
    if (!gram_f32_enabled()) {
        std::puts("test_gram: skipped (no AVX-512F on this CPU)");
        return 0;
    }
    std::mt19937 gen(5);
    std::normal_distribution<float> normal;
    constexpr double kSentinel = -12345.0;
    for (int64_t l : {1, 3, 5, 97}) {
        for (int64_t d : {1, 3, 8, 9, 97, 1025}) {
            std::vector<float> x(size_t(l * d));
            for (auto& v : x) v = normal(gen) * (gen() % 2 ? 1e-3f : 30.f);
            for (int64_t row0 : {int64_t(0), int64_t(1), l - 1, l}) {
                if (row0 < 0) continue;
                const double B = row0 % 2 ? 0.0 : 1.5;
                std::vector<double> K(size_t(l * l), kSentinel);
                std::vector<const float*> rows(static_cast<size_t>(l));  // in reverse order in memory
                for (int64_t i = 0; i < l; ++i) rows[size_t(i)] = x.data() + (l - 1 - i) * d;
                gram_aug_f32(rows.data(), l, d, row0, B, K.data());
                for (int64_t i = 0; i < l; ++i)
                    for (int64_t j = 0; j < l; ++j) {
                        const double v = K[size_t(i * l + j)];
                        if (i < row0 && j < row0) {  // not ours to write
                            CHECK(v == kSentinel);
                            continue;
                        }
                        double ref = 0.0, mag = 0.0;
                        for (int64_t c = 0; c < d; ++c) {
                            const double p = double(rows[size_t(i)][c]) * double(rows[size_t(j)][c]);
                            ref += p;
                            mag += std::fabs(p);
                        }
                        CHECK(std::fabs(v - (ref + B * B)) <= 1e-14 * (mag + B * B) + 1e-300);
                        CHECK(v == K[size_t(j * l + i)]);
                    }
            }
        }
    }
    std::puts("test_gram: ok");
    return 0;
}
