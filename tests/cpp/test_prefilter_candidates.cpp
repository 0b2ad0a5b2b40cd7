// The first pass's candidate bookkeeping (csrc/cpu/prefilter_candidates.h): kth_floor must
// return a value that at least k of the values reach (a valid floor) on any input, sampled
// path or fallback, and on plain random data one close to the k-th largest; Pending::cut must
// keep exactly the entries reaching the floor, in order.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/prefilter_candidates.h"

using namespace simattr::prefilter_detail;

namespace {
int64_t at_or_above(const std::vector<float>& v, float x) {
    return std::count_if(v.begin(), v.end(), [&](float e) { return e >= x; });
}
}  // namespace

int main() {
    std::mt19937 gen(3);
    std::normal_distribution<float> normal;
    std::uniform_int_distribution<int> level(0, 5);
    std::vector<float> tmp;
    for (int64_t n : {1, 3, 97, 511, 512, 1025, 5000}) {
        for (int shape = 0; shape < 7; ++shape) {
            std::vector<float> v(static_cast<size_t>(n));
            for (auto& e : v) e = shape == 1 ? float(level(gen)) : (shape == 5 ? 1.f : normal(gen));
            if (shape == 2) std::sort(v.begin(), v.end());                         // ascending
            if (shape == 3) std::sort(v.begin(), v.end(), std::greater<float>());  // descending
            if (shape == 6)  // the sampled positions hold the largest values: the sample misjudges
                for (int64_t i = 0; i < 128 && n >= 512; ++i) v[size_t(i * n / 128)] = 1000.f + float(i);
            if (shape == 4)
                for (size_t i = 0; i < v.size(); i += 3) v[i] = -INFINITY;  // non-finite pairs' bounds
            for (int64_t k : {int64_t(1), std::max<int64_t>(1, n / 7), std::max<int64_t>(1, n / 3), n}) {
                const float f = kth_floor(v.data(), n, k, tmp);
                std::vector<float> sorted = v;
                std::sort(sorted.begin(), sorted.end(), std::greater<float>());
                CHECK(at_or_above(v, f) >= k);  // valid: at most the k-th largest
                CHECK(f <= sorted[size_t(k - 1)]);
                if (shape == 0 && n >= 1025 && k >= n / 7 && k < n)  // and close on random data
                    CHECK(at_or_above(v, f) <= k + k / 2 + 16);
            }
        }
    }
    Pending p;
    for (int64_t i = 0; i < 1000; ++i) {
        p.up.push_back(normal(gen));
        p.row.push_back(i);
    }
    p.up[10] = 0.5f;  // exactly at the floor: kept
    const std::vector<float> up = p.up;
    p.cut(0.5f);
    CHECK(p.clean == p.up.size() && p.up.size() == p.row.size());
    size_t j = 0;
    for (int64_t i = 0; i < 1000; ++i)
        if (up[size_t(i)] >= 0.5f) {
            CHECK(j < p.row.size() && p.row[j] == i && p.up[j] == up[size_t(i)]);
            ++j;
        }
    CHECK(j == p.row.size());
    std::puts("test_prefilter_candidates: ok");
    return 0;
}
