// kth_largest (csrc/cpu/float_select.h) against std::nth_element on the values >= above: odd
// sizes, k at its edges, ties (few distinct values), signed zeros, infinities, NaN (never
// counted), values that share all but their lowest bits, and thresholds that keep all, some
// or exactly k of the values.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/float_select.h"

using namespace simattr;

int main() {
    std::mt19937 gen(5);
    std::normal_distribution<float> normal;
    const float inf = std::numeric_limits<float>::infinity();
    int checked = 0;
    for (int64_t n : {1, 3, 97, 1025, 6000}) {
        for (int shape = 0; shape < 5; ++shape) {
            std::vector<float> s(static_cast<size_t>(n));
            for (int64_t i = 0; i < n; ++i) {
                float v = normal(gen);
                if (shape == 1) v = float(int(v * 2.f)) * 0.5f;               // ties, and -0 / +0
                if (shape == 2) v = std::nextafter(1.f, 2.f * float(i % 7));  // neighbouring floats
                if (shape == 3 && i % 11 == 0) v = (i % 22 == 0) ? inf : -inf;
                if (shape == 4 && i % 13 == 0) v = std::nanf("");
                if (shape == 1 && i % 2) v = -v;
                s[size_t(i)] = v;
            }
            std::vector<float> all;
            for (float v : s)
                if (!std::isnan(v)) all.push_back(v);
            std::sort(all.begin(), all.end(), std::greater<float>());
            const int64_t m = int64_t(all.size());
            if (m == 0) continue;
            // Thresholds: none, the median, and the smallest value (all kept); k from 1 to m.
            for (float above : {-inf, all[size_t(m / 2)], all[size_t(m - 1)]}) {
                int64_t pass = 0;
                for (float v : all) pass += v >= above;
                for (int64_t k : {int64_t(1), int64_t(2), pass / 2 + 1, pass - 1, pass}) {
                    if (k < 1 || k > pass) continue;
                    const float got = kth_largest(s.data(), n, above, k);
                    CHECK(got == all[size_t(k - 1)]);
                    ++checked;
                }
            }
        }
    }
    std::printf("test_float_select: ok (%d cases)\n", checked);
    return 0;
}
