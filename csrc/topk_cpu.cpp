#include <algorithm>
#include <cmath>
#include <limits>

#include "parallel.h"
#include "topk.h"

namespace simattr {

TopkAccumulator::TopkAccumulator(int64_t nq, int64_t k)
    : nq_(nq), k_(k), cap_(2 * k), buf_(static_cast<size_t>(nq * 2 * k)),
      count_(static_cast<size_t>(nq), 0),
      worst_(static_cast<size_t>(nq),
             Candidate{-std::numeric_limits<float>::infinity(),
                       std::numeric_limits<int64_t>::max()}) {}

void TopkAccumulator::compact(int64_t row) {
    Candidate* b = buf_.data() + row * cap_;
    std::nth_element(b, b + (k_ - 1), b + count_[row], better);
    worst_[row] = b[k_ - 1];
    count_[row] = k_;
}

void TopkAccumulator::push(int64_t row0, int64_t nrows, const float* scores, int64_t ld,
                           const int64_t* ids, int64_t ncols, int n_threads) {
    parallel_for(nrows, n_threads, [&](int64_t r) {
        const int64_t row = row0 + r;
        const float* s = scores + r * ld;
        Candidate* b = buf_.data() + row * cap_;
        int64_t cnt = count_[row];
        Candidate worst = worst_[row];
        for (int64_t c = 0; c < ncols; ++c) {
            // One comparison rejects almost every score once the row holds k candidates.
            if (s[c] < worst.score) continue;
            const Candidate cand{s[c], ids[c]};
            if (!better(cand, worst)) continue;
            b[cnt++] = cand;
            if (cnt == cap_) {
                count_[row] = cnt;
                compact(row);
                cnt = k_;
                worst = worst_[row];
            }
        }
        count_[row] = cnt;
    });
}

void TopkAccumulator::finalize(float* out_scores, int64_t* out_ids, int n_threads) {
    parallel_for(nq_, n_threads, [&](int64_t row) {
        Candidate* b = buf_.data() + row * cap_;
        const int64_t n = std::min(count_[row], k_);
        if (count_[row] > k_) std::nth_element(b, b + (k_ - 1), b + count_[row], better);
        std::sort(b, b + n, better);
        float* os = out_scores + row * k_;
        int64_t* oi = out_ids + row * k_;
        for (int64_t j = 0; j < n; ++j) {
            os[j] = b[j].score;
            oi[j] = b[j].id;
        }
        for (int64_t j = n; j < k_; ++j) {
            os[j] = std::numeric_limits<float>::quiet_NaN();
            oi[j] = -1;
        }
    });
}

void topk(const float* queries, int64_t ldq, int64_t nq, const float* keys, int64_t ldk,
          int64_t nb, int64_t d, const int64_t* ids, const float* key_sq_norms, Metric metric,
          SgemmFn sgemm, TopkAccumulator& acc, int64_t row0, int n_threads) {
    // Score tile of at most tq x tk floats (16 MiB): large enough for GEMM efficiency,
    // small enough to stay bounded whatever nq and nb are.
    constexpr int64_t kTileFloats = int64_t(1) << 22;
    const int64_t tk = std::min<int64_t>(std::max<int64_t>(nb, 1), 8192);
    const int64_t tq = std::max<int64_t>(1, std::min<int64_t>(nq, kTileFloats / tk));
    std::vector<float> tile(static_cast<size_t>(tq * tk));
    for (int64_t k0 = 0; k0 < nb; k0 += tk) {
        const int64_t kn = std::min(tk, nb - k0);
        for (int64_t q0 = 0; q0 < nq; q0 += tq) {
            const int64_t qn = std::min(tq, nq - q0);
            gemm_abt(sgemm, queries + q0 * ldq, ldq, keys + k0 * ldk, ldk, tile.data(), kn, qn,
                     kn, d);
            if (metric == Metric::L2) {
                const float* sq = key_sq_norms + k0;
                parallel_for(qn, n_threads, [&](int64_t r) {
                    float* t = tile.data() + r * kn;
                    for (int64_t c = 0; c < kn; ++c) t[c] = 2.f * t[c] - sq[c];
                });
            }
            acc.push(row0 + q0, qn, tile.data(), kn, ids + k0, kn, n_threads);
        }
    }
}

}  // namespace simattr
