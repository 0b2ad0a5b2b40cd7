// The top-k accumulator against a full sort, with scores offered in uneven blocks, many
// ties, and a row with fewer candidates than k (padded with NaN / -1). Row 0's k-th best
// score is asked for after every block (kth_score cuts its reservoir): it must be the k-th
// best so far, and the final result unchanged.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/topk.h"

int main() {
    const int64_t nq = 3, n = 1025, k = 97;
    std::mt19937 rng(12345);
    std::uniform_int_distribution<int> level(0, 40);  // few distinct scores: many ties
    std::vector<float> scores(size_t(nq * n));
    for (auto& s : scores) s = float(level(rng)) / 8.f;
    std::vector<int64_t> ids(static_cast<size_t>(n));
    std::iota(ids.begin(), ids.end(), 0);

    simattr::TopkAccumulator acc(nq, k);
    // Row 2 only sees the first 50 keys: fewer than k.
    for (int64_t c0 = 0, step = 1; c0 < n; c0 += step, step = step * 3 + 1) {
        const int64_t cn = std::min<int64_t>(step, n - c0);
        acc.push(0, 2, scores.data() + c0, n, ids.data() + c0, cn, 2);
        std::vector<float> seen(scores.begin(), scores.begin() + c0 + cn);
        std::sort(seen.begin(), seen.end(), std::greater<float>());
        const float kth = acc.kth_score(0);
        if (int64_t(seen.size()) >= k)
            CHECK(kth == seen[size_t(k - 1)]);
        else
            CHECK(kth == -INFINITY);
        if (c0 < 50)
            acc.push(2, 1, scores.data() + 2 * n + c0, n, ids.data() + c0, std::min<int64_t>(cn, 50 - c0), 1);
    }
    std::vector<float> out_s(size_t(nq * k));
    std::vector<int64_t> out_i(size_t(nq * k));
    acc.finalize(out_s.data(), out_i.data(), nullptr, 2);

    for (int64_t r = 0; r < nq; ++r) {
        const int64_t avail = r == 2 ? 50 : n;
        std::vector<int64_t> order(static_cast<size_t>(avail));
        std::iota(order.begin(), order.end(), 0);
        const float* s = scores.data() + r * n;
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s[a] > s[b]; });
        for (int64_t j = 0; j < k; ++j) {
            if (j < avail) {
                CHECK(out_i[size_t(r * k + j)] == order[size_t(j)]);
                CHECK(out_s[size_t(r * k + j)] == s[order[size_t(j)]]);
            } else {
                CHECK(out_i[size_t(r * k + j)] == -1);
                CHECK(std::isnan(out_s[size_t(r * k + j)]));
            }
        }
    }
    std::puts("test_topk_accumulator: ok");
    return 0;
}
