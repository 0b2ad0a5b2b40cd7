// violators (csrc/cpu/esvm_working_set.h) against a full sort: the `budget` worst violators
// outside the working set (largest f first, ties to the lower row), whether or not the
// sampled floor is used, holds, or misjudges and is dropped; for pools of odd sizes, with
// ties, with rows already in the working set and with no violator at all.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/esvm_working_set.h"

using namespace simattr;
using namespace simattr::esvm_detail;

namespace {

std::vector<int64_t> reference(const std::vector<float>& f, const Svm& s, double margin, int64_t budget) {
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < int64_t(f.size()); ++i)
        if (outside_gradient(f[size_t(i)]) < margin && !s.in_ws[size_t(i)]) rows.push_back(i);
    std::sort(rows.begin(), rows.end(), [&](int64_t a, int64_t b) {
        return f[size_t(a)] > f[size_t(b)] || (f[size_t(a)] == f[size_t(b)] && a < b);
    });
    if (int64_t(rows.size()) > budget) rows.resize(size_t(budget));
    return rows;
}

}  // namespace

int main() {
    std::mt19937 gen(11);
    std::normal_distribution<float> normal;
    std::uniform_int_distribution<int> level(-4, 2);
    int checked = 0;
    for (int64_t n : {1, 3, 97, 1025, 6000}) {
        for (int shape = 0; shape < 5; ++shape) {
            std::vector<float> f(static_cast<size_t>(n));
            for (auto& v : f)
                v = shape == 1 ? 0.5f * float(level(gen)) : normal(gen) - (shape == 3 ? 5.f : 0.f);
            if (shape == 2 && n >= 1025) {           // every key violates, and the positions the floor
                for (auto& v : f) v = std::fabs(v);  // samples hold the largest values
                for (int64_t c = 0; c < 128; ++c) f[size_t(c * n / 128)] = 100.f + float(c);
            }
            if (shape == 4) std::sort(f.begin(), f.end());  // the worst last
            for (int64_t budget : {int64_t(1), int64_t(32), int64_t(128)}) {
                Svm s;
                s.in_ws.assign(size_t(n), 0);
                for (int64_t i = 0; i < n; i += 7) s.in_ws[size_t(i)] = 1;  // already in the working set
                const double margin = 1e-3;
                CHECK(violators(f.data(), s, n, margin, budget) == reference(f, s, margin, budget));
                ++checked;
            }
        }
    }
    std::printf("test_violators: ok (%d cases)\n", checked);
    return 0;
}
