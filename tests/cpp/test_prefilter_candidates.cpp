// The first pass's candidate bookkeeping (csrc/cpu/prefilter_candidates.h): kth_floor must
// return a value that at least k of the values reach (a valid floor) on any input, sampled
// path or fallback, and on plain random data one close to the k-th largest; Pending::cut must
// keep exactly the entries reaching the floor, in order; the AVX-512 loops under them
// (keep_reaching, count_reaching, split_reaching) must do what a plain loop does, on every
// length around a vector's 16 lanes, with infinities and NaN (which reaches no floor).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
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

// keep_reaching, count_reaching and split_reaching against plain loops.
void check_compress(std::mt19937& gen) {
    std::normal_distribution<float> normal;
    for (int64_t n : {0, 1, 3, 15, 16, 17, 31, 32, 33, 97, 1025}) {
        for (int shape = 0; shape < 3; ++shape) {
            std::vector<float> up(static_cast<size_t>(n));
            std::vector<int64_t> row(static_cast<size_t>(n));
            for (int64_t i = 0; i < n; ++i) {
                up[size_t(i)] = shape == 1 ? 0.25f : normal(gen);  // shape 1: all at the floor
                row[size_t(i)] = (int64_t(1) << 40) + 7 * i;       // ids beyond 32 bits
            }
            if (shape == 2)
                for (int64_t i = 0; i < n; i += 5)
                    up[size_t(i)] = i % 3 == 0 ? NAN : (i % 3 == 1 ? INFINITY : -INFINITY);
            for (float floor : {-INFINITY, 0.25f, 1.f, INFINITY}) {
                std::vector<float> want_up, rest_up;
                std::vector<int64_t> want_row, rest_row;
                for (int64_t i = 0; i < n; ++i)
                    if (up[size_t(i)] >= floor) {
                        want_up.push_back(up[size_t(i)]);
                        want_row.push_back(row[size_t(i)]);
                    }
                CHECK(count_reaching(up.data(), n, floor) == int64_t(want_up.size()));
                std::vector<float> u = up, v = up;
                std::vector<int64_t> r = row;
                const int64_t kept = keep_reaching(u.data(), r.data(), n, floor);
                CHECK(kept == int64_t(want_up.size()));
                CHECK(std::equal(want_up.begin(), want_up.end(), u.begin()));
                CHECK(std::equal(want_row.begin(), want_row.end(), r.begin()));
                CHECK(keep_reaching(v.data(), n, floor) == kept &&
                      std::equal(want_up.begin(), want_up.end(), v.begin()));
                for (int64_t cap : {int64_t(0), int64_t(1), int64_t(16), int64_t(want_up.size() / 2), n}) {
                    // The first `cap` entries reaching the floor are taken; the rest stay.
                    std::vector<int64_t> want_taken;
                    rest_up.clear();
                    rest_row.clear();
                    for (int64_t i = 0; i < n; ++i)
                        if (up[size_t(i)] >= floor && int64_t(want_taken.size()) < cap) {
                            want_taken.push_back(row[size_t(i)]);
                        } else {
                            rest_up.push_back(up[size_t(i)]);
                            rest_row.push_back(row[size_t(i)]);
                        }
                    u = up;
                    r = row;
                    std::vector<int64_t> taken_rows(static_cast<size_t>(cap));
                    int64_t taken = -1;
                    const int64_t stay =
                        split_reaching(u.data(), r.data(), n, floor, cap, taken_rows.data(), &taken);
                    CHECK(taken == int64_t(want_taken.size()) && stay == int64_t(rest_up.size()));
                    CHECK(std::equal(want_taken.begin(), want_taken.end(), taken_rows.begin()));
                    for (int64_t i = 0; i < stay; ++i)  // NaN entries stay: compare bits
                        CHECK(std::memcmp(&u[size_t(i)], &rest_up[size_t(i)], 4) == 0 &&
                              r[size_t(i)] == rest_row[size_t(i)]);
                }
            }
        }
    }
}
}  // namespace

int main() {
    if (!__builtin_cpu_supports("avx512f")) {  // the first pass, and these loops, need AVX-512
        std::puts("test_prefilter_candidates: skipped (no AVX-512)");
        return 0;
    }
    std::mt19937 gen(3);
    check_compress(gen);
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
