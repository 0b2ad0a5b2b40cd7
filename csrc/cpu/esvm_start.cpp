#include "cpu/esvm_start.h"

#include <algorithm>

#include "common/packed_key.h"
#include "common/parallel.h"
#include "cpu/esvm_working_set.h"  // nearest
#include "cpu/scores.h"

namespace simattr {
namespace esvm_detail {

bool LdaStart::fit(const float* keys, int64_t ldk, int64_t n, int64_t d, const Blas& blas) {
    d_ = 0;
    if (n <= 0 || d <= 0) return false;
    mu_.assign(size_t(d), 0.0);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < d; ++c) mu_[size_t(c)] += keys[i * ldk + c];
    for (double& v : mu_) v /= double(n);
    // S [d, d] row-major, upper triangle (what GrowingCholesky::factor reads): the centred
    // sample rows' outer products, one row at a time (contiguous in the inner loop).
    const int64_t s = std::min(n, kSampleRows);
    std::vector<double> S(static_cast<size_t>(d * d), 0.0), x(static_cast<size_t>(d));
    for (int64_t r = 0; r < s; ++r) {
        const float* row = keys + (r * n / s) * ldk;
        for (int64_t c = 0; c < d; ++c) x[size_t(c)] = double(row[c]) - mu_[size_t(c)];
        for (int64_t a = 0; a < d; ++a) {
            const double xa = x[size_t(a)];
            double* Sa = S.data() + a * d;
#pragma omp simd
            for (int64_t b = a; b < d; ++b) Sa[b] += xa * x[size_t(b)];
        }
    }
    double trace = 0.0;
    for (int64_t a = 0; a < d; ++a) trace += S[size_t(a * d + a)];
    if (!(trace > 0.0)) return false;  // every sampled key the same: no direction to learn
    const double ridge = kRidge * trace / double(d);
    for (int64_t a = 0; a < d; ++a) {
        for (int64_t b = a; b < d; ++b) S[size_t(a * d + b)] /= double(s);
        S[size_t(a * d + a)] += ridge / double(s);
    }
    if (!chol_.factor(blas, S.data(), d)) return false;
    d_ = d;
    return true;
}

void LdaStart::directions(const float* queries, int64_t ldq, int64_t m, float* W, int n_threads) const {
    const int64_t d = d_;
    parallel_for(m, n_threads, [&](int64_t j) {
        thread_local std::vector<double> b;
        b.resize(size_t(d));
        for (int64_t c = 0; c < d; ++c) b[size_t(c)] = double(queries[j * ldq + c]) - mu_[size_t(c)];
        chol_.solve(b.data());
        for (int64_t c = 0; c < d; ++c) W[j * d + c] = float(b[size_t(c)]);
    });
}

std::vector<int64_t> top_rows(const float* f, int64_t n, int64_t count) {
    count = std::clamp<int64_t>(count, 0, n);
    // One packed key per row, whose integer order is this one (common/packed_key.h): a
    // selection and a sort of the `count` best (a partial_sort through the rows with a
    // comparator was 2% of the main job).
    thread_local std::vector<Key> keys;
    keys.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) keys[size_t(i)] = pack(f[i], i);
    if (count < n) std::nth_element(keys.begin(), keys.begin() + count, keys.end());
    std::sort(keys.begin(), keys.begin() + count);
    std::vector<int64_t> out(static_cast<size_t>(count));
    for (int64_t c = 0; c < count; ++c) out[size_t(c)] = unpack_id(keys[size_t(c)]);
    return out;
}

bool lda_start_pays(const Pool& pool, int64_t rows, const Blas& blas, int n_threads, const RunPilots& run,
                    LdaStart& lda) {
    const int64_t n = pool.n, d = pool.d;
    rows = std::min(rows, n);
    if (rows <= 0) return false;
    std::vector<float> q(size_t(kPilots * d)), scores(size_t(kPilots * n)), f(size_t(kPilots * n));
    int64_t ids[kPilots];
    for (int64_t j = 0; j < kPilots; ++j) {
        ids[j] = (2 * j + 1) * n / (2 * kPilots);
        std::copy(pool.keys + ids[j] * pool.ldk, pool.keys + ids[j] * pool.ldk + d, q.begin() + j * d);
    }
    run(q.data(), ids, f.data());
    // The median over the pilots of how many of each one's start rows end as support vectors.
    const auto support = [&](auto&& start_rows) {
        int64_t hits[kPilots];
        for (int64_t j = 0; j < kPilots; ++j) {
            hits[j] = 0;
            for (int64_t i : start_rows(j)) hits[j] += f[size_t(j * n + i)] > -1.0f;
        }
        std::sort(hits, hits + kPilots);
        return hits[kPilots / 2];
    };
    scores_packed(q.data(), d, kPilots, pool.panels, n, d, scores.data(), n, n_threads);
    const int64_t near =
        support([&](int64_t j) { return nearest(&scores[size_t(j * n)], pool.sq_norms, n, rows); });
    if (2 * near < rows || !lda.fit(pool.keys, pool.ldk, n, d, blas)) return false;
    std::vector<float> W(size_t(kPilots * d));
    lda.directions(q.data(), d, kPilots, W.data(), n_threads);
    scores_packed(W.data(), d, kPilots, pool.panels, n, d, scores.data(), n, n_threads);
    if (support([&](int64_t j) { return top_rows(&scores[size_t(j * n)], n, rows); }) >= near) return true;
    lda.clear();
    return false;
}

}  // namespace esvm_detail
}  // namespace simattr
