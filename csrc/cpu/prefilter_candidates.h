// A query's candidates while the first pass runs, and the floor they are cut to. Internal to
// prefilter_cpu.cpp. Needs AVX-512F, as the first pass does (bf16_prefilter_available()): the
// loops over entries are cpu/prefilter_compress_cpu.cpp's.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

namespace simattr {
namespace prefilter_detail {

// Moves the entries c < n with up[c] >= floor (and their row[c]) to the front, in order, in
// place; returns how many.
int64_t keep_reaching(float* up, int64_t* row, int64_t n, float floor);
// The same for values alone.
int64_t keep_reaching(float* v, int64_t n, float floor);
// How many of v [n] are >= x.
int64_t count_reaching(const float* v, int64_t n, float x);
// Of the entries c < n with up[c] >= floor, the first `cap` in order go to taken_rows (their
// rows; *taken of them); every other entry moves to the front of up and row, in order, in
// place (the returned count).
int64_t split_reaching(float* up, int64_t* row, int64_t n, float floor, int64_t cap, int64_t* taken_rows,
                       int64_t* taken);

// One query's candidates: (upper bound, key row), in ascending key row order.
struct Pending {
    std::vector<float> up;
    std::vector<int64_t> row;
    size_t clean = 0;  // size after the last cut to the floor
    void clear() {
        up.clear();
        row.clear();
        clean = 0;
    }
    // Keeps the entries whose upper bound reaches `floor`, in order.
    void cut(float floor) {
        const size_t kept = size_t(keep_reaching(up.data(), row.data(), int64_t(up.size()), floor));
        up.resize(kept);
        row.resize(kept);
        clean = kept;
    }
};

// A value with at least k of vals [n] (n >= k) at or above it, close below their k-th largest:
// the quantile of a sample of 128 a little above rank k, confirmed by counting. Two streaming
// passes, where nth_element (the fallback, when the sample misjudges) costs several with
// unpredictable branches. Any such value is as valid a floor as the k-th largest itself.
inline float kth_floor(const float* vals, int64_t n, int64_t k, std::vector<float>& tmp) {
    constexpr int64_t kSample = 128;
    if (n >= 4 * kSample) {
        float sample[kSample];
        for (int64_t i = 0; i < kSample; ++i) sample[i] = vals[i * n / kSample];
        const int64_t rank = (kSample * k * 9 + n * 8 - 1) / (n * 8) + 2;  // 9/8 k/n of the sample, +2
        if (rank < kSample) {
            std::nth_element(sample, sample + rank, sample + kSample, std::greater<float>());
            const float v = sample[rank];
            if (count_reaching(vals, n, v) >= k) return v;
        }
    }
    tmp.assign(vals, vals + n);
    std::nth_element(tmp.begin(), tmp.begin() + (k - 1), tmp.end(), std::greater<float>());
    return tmp[size_t(k - 1)];
}

// Moves k of the c > k pending candidates into rows: the first in key order of those whose
// upper bound is near the highest (kth_floor), the likely top k. Key order is kept on both sides.
inline void take_likely_top(Pending& pend, int64_t k, std::vector<int64_t>& rows, std::vector<float>& tmp) {
    const int64_t c = int64_t(pend.up.size());
    const float U = kth_floor(pend.up.data(), c, k, tmp);
    rows.resize(size_t(k));
    int64_t taken = 0;
    const size_t kept = size_t(split_reaching(pend.up.data(), pend.row.data(), c, U, k, rows.data(), &taken));
    rows.resize(size_t(taken));
    pend.up.resize(kept);
    pend.row.resize(kept);
}

}  // namespace prefilter_detail
}  // namespace simattr
