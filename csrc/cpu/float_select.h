// Exact selection of the k-th largest float by radix: three histogram passes over the
// order-preserving bits (11, 11 and 10 bits), the later ones only over the bucket that holds
// the answer. Top-k's reservoir needs it once per row of a long block (the exemplar SVMs push
// rows of ~6,000 decision values for k = 1,280), where std::nth_element was 3.5% of the main
// job.
#pragma once
#include <cstdint>
#include <vector>

#include "common/packed_key.h"  // ascending_bits

namespace simattr {

namespace float_select_detail {

// Among bits [shift, shift + bits) of the values in v, the bucket holding the r-th largest
// (r >= 1, counted from the top); r becomes its rank within that bucket.
inline uint32_t bucket_of_rank(const std::vector<uint32_t>& v, int shift, int bits, int64_t& r) {
    uint32_t count[2048] = {};
    const uint32_t mask = (1u << bits) - 1;
    for (uint32_t u : v) ++count[(u >> shift) & mask];
    uint32_t b = mask;
    for (; b > 0 && r > count[b]; --b) r -= count[b];  // b = 0 ends it even if too few values
    return b;
}

}  // namespace float_select_detail

// The k-th largest of the values of s [n] that are >= above (NaN never is), counting equal
// values separately. At least k of them must be >= above (k >= 1).
inline float kth_largest(const float* s, int64_t n, float above, int64_t k) {
    using namespace float_select_detail;
    thread_local std::vector<uint32_t> v, w;
    v.clear();
    for (int64_t i = 0; i < n; ++i)
        if (s[i] >= above) v.push_back(ascending_bits(s[i]));
    int64_t r = k;
    uint32_t prefix = 0;
    for (const auto& [shift, bits] : {std::pair{21, 11}, std::pair{10, 11}, std::pair{0, 10}}) {
        const uint32_t b = bucket_of_rank(v, shift, bits, r);
        prefix |= b << shift;
        w.clear();
        for (uint32_t u : v)
            if (((u >> shift) & ((1u << bits) - 1)) == b) w.push_back(u);
        v.swap(w);
    }
    return from_ascending_bits(prefix);
}

}  // namespace simattr
