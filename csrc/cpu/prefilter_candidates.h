// A query's candidates while the first pass runs, and the floor they are cut to. Internal to
// prefilter_cpu.cpp.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

namespace simattr {
namespace prefilter_detail {

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
    // Keeps the entries whose upper bound reaches `floor`, in order (branch-free: about half
    // of them go on a first cut, an unpredictable branch).
    void cut(float floor) {
        size_t kept = 0;
        for (size_t c = 0; c < up.size(); ++c) {
            up[kept] = up[c];
            row[kept] = row[c];
            kept += up[c] >= floor;
        }
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
            int64_t count = 0;
            for (int64_t i = 0; i < n; ++i) count += vals[i] >= v;
            if (count >= k) return v;
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
    rows.resize(size_t(k + 1));  // slot k: a scratch write once k are taken
    size_t taken = 0, kept = 0;
    for (int64_t j = 0; j < c; ++j) {  // branch-free: a coin flip for most entries
        const float u = pend.up[size_t(j)];
        const int64_t row = pend.row[size_t(j)];
        const bool take = u >= U && taken < size_t(k);
        rows[taken] = row;
        pend.up[kept] = u;
        pend.row[kept] = row;
        taken += take;
        kept += !take;
    }
    rows.resize(taken);
    pend.up.resize(kept);
    pend.row.resize(kept);
}

}  // namespace prefilter_detail
}  // namespace simattr
