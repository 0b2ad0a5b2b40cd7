// sort_keys (csrc/cpu/key_sort.h) against std::sort: any 64-bit keys, sizes on both sides of
// the radix threshold, scores of both signs packed by pack(), and many equal scores (runs
// ordered by id).
#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/key_sort.h"

using namespace simattr;

int main() {
    std::mt19937_64 gen(9);
    std::normal_distribution<float> normal;
    std::uniform_int_distribution<int> level(-3, 3);
    int checked = 0;
    for (int64_t n : {0, 1, 3, 255, 256, 257, 1025, 1280, 2560}) {
        for (int shape = 0; shape < 4; ++shape) {
            std::vector<Key> a(static_cast<size_t>(n));
            for (int64_t i = 0; i < n; ++i) {
                const int64_t id = int64_t(gen() % 100000);
                if (shape == 0) a[size_t(i)] = gen();  // any bits
                if (shape == 1) a[size_t(i)] = pack(normal(gen), id);
                if (shape == 2) a[size_t(i)] = pack(float(level(gen)) * 0.5f, id);  // many ties
                if (shape == 3) a[size_t(i)] = pack(i % 2 ? -0.f : 0.f, n - i);     // one run, -0 == +0
            }
            std::vector<Key> ref = a;
            std::sort(ref.begin(), ref.end());
            sort_keys(a.data(), n);
            CHECK(a == ref);
            ++checked;
        }
    }
    std::printf("test_key_sort: ok (%d cases)\n", checked);
    return 0;
}
