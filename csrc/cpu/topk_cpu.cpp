#include <algorithm>
#include <functional>
#include <limits>
#include <vector>

#include "common/parallel.h"
#include "common/simd.h"
#include "cpu/float_select.h"
#include "cpu/key_sort.h"
#include "cpu/prefilter.h"
#include "cpu/scores.h"
#include "cpu/topk.h"

namespace simattr {

TopkAccumulator::TopkAccumulator(int64_t nq, int64_t k)
    : nq_(nq),
      k_(k),
      cap_(2 * k),
      buf_(new Key[static_cast<size_t>(nq * 2 * k)]),
      count_(static_cast<size_t>(nq), 0),
      worst_(static_cast<size_t>(nq), ~Key(0)),
      worst_score_(static_cast<size_t>(nq), -std::numeric_limits<float>::infinity()) {}

// Empties a full reservoir down to (a little more than) its best k. The cut is estimated
// from a 1-in-8 sample and checked by counting: everything that packs at or below a key
// that at least k candidates reach is kept, and that key becomes the row's admission
// threshold (a conservative one: it never rejects a candidate that could still make the top
// k). When the estimate misses, the exact cut is taken with nth_element.
void TopkAccumulator::compact(int64_t row) {
    if (!compact_sampled(row)) cut_exact(row);
    worst_score_[row] = unpack_score(worst_[row]);
}

float TopkAccumulator::kth_score(int64_t row) {
    if (count_[row] < k_) return worst_score_[row];
    cut_exact(row);
    return worst_score_[row] = unpack_score(worst_[row]);
}

// The row's reservoir (at least k candidates) cut to exactly its k best, the k-th becoming
// the admission threshold.
void TopkAccumulator::cut_exact(int64_t row) {
    Key* b = buf_.get() + row * cap_;
    std::nth_element(b, b + (k_ - 1), b + count_[row]);
    worst_[row] = b[k_ - 1];
    count_[row] = k_;
}

SIMATTR_CLONES bool TopkAccumulator::compact_sampled(int64_t row) {
    constexpr int64_t kStride = 8;
    Key* b = buf_.get() + row * cap_;
    const int64_t n = count_[row];
    if (k_ < 64 || n < 2 * kStride * 16) return false;  // small rows: the exact cut is cheap
    thread_local std::vector<Key> sample;
    sample.clear();
    for (int64_t i = 0; i < n; i += kStride) sample.push_back(b[i]);
    // Aim for ~1.1 k kept: few enough to leave room, enough that the check rarely fails.
    const int64_t r = std::min<int64_t>(int64_t(sample.size()) - 1, (11 * k_) / (10 * kStride));
    std::nth_element(sample.begin(), sample.begin() + r, sample.end());
    const Key cut = sample[r];
    int64_t m = 0;
    for (int64_t i = 0; i < n; ++i) m += (b[i] <= cut);
    if (m < k_ || m > cap_ - k_ / 4) return false;
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) {  // branch-free: about half go, an unpredictable branch
        b[kept] = b[i];
        kept += b[i] <= cut;
    }
    count_[row] = kept;
    // Ids are unique, so no later candidate packs equal to the cut: admit those below it.
    worst_[row] = cut;
    return true;
}

// A score such that at least k of s[0, n) are >= it, and as high as cheaply possible: the
// k-th best estimated from a 1-in-`stride` sample (slightly lowered for safety), checked by
// counting, with an exact selection as the fallback. Only scores >= `above` are considered
// (`pass` of them).
SIMATTR_CLONES float TopkAccumulator::block_floor(const float* s, int64_t n, float above,
                                                  int64_t pass) const {
    thread_local std::vector<float> tmp;
    const int64_t stride = std::max<int64_t>(1, std::min<int64_t>(16, pass / (4 * k_)));
    if (stride > 1) {
        tmp.clear();
        for (int64_t c = 0; c < n; c += stride)
            if (s[c] >= above) tmp.push_back(s[c]);
        // Expected rank of the k-th best among the samples is k / stride; aim 25% lower.
        const int64_t r = std::min<int64_t>(int64_t(tmp.size()) - 1, (5 * k_) / (4 * stride));
        if (r >= 0) {
            std::nth_element(tmp.begin(), tmp.begin() + r, tmp.end(), std::greater<float>());
            const float guess = tmp[r];
            int64_t m = 0;
#pragma omp simd reduction(+ : m)
            for (int64_t c = 0; c < n; ++c) m += (s[c] >= guess);
            if (m >= k_ && guess >= above) return guess;
        }
    }
    return kth_largest(s, n, above, k_);  // scores equal to it are kept: ties are resolved by id
}

SIMATTR_CLONES void TopkAccumulator::push_row(int64_t row, const float* s, const int64_t* ids,
                                              int64_t ncols) {
    constexpr int64_t kChunk = 16;
    Key* b = buf_.get() + row * cap_;
    int64_t cnt = count_[row];
    Key worst = worst_[row];
    float worst_score = worst_score_[row];
    // A block that would overflow the reservoir (the first block of a row, or a run of keys
    // better than all seen so far, as when keys are sorted by class) is first cut down to
    // its own k best: nothing below the block's k-th score can make the final top k. One
    // selection on bare floats replaces several compactions of the reservoir.
    float floor_score = worst_score;
    int64_t pass = 0;
#pragma omp simd reduction(+ : pass)
    for (int64_t c = 0; c < ncols; ++c) pass += (s[c] >= floor_score);
    if (pass > cap_ - cnt && pass > k_) floor_score = block_floor(s, ncols, floor_score, pass);
    int64_t c0 = 0;
    while (c0 < ncols) {
        const int64_t c1 = std::min(ncols, c0 + kChunk);
        // Vectorised pre-filter: once a row holds k candidates almost every chunk of scores
        // lies below the threshold and is skipped with one SIMD compare.
        int any = 0;
        const float th = std::max(worst_score, floor_score);
#pragma omp simd reduction(| : any)
        for (int64_t c = c0; c < c1; ++c) any |= (s[c] >= th);
        if (any) {
            for (int64_t c = c0; c < c1; ++c) {
                if (s[c] < floor_score) continue;
                const Key key = pack(s[c], ids[c]);
                if (key >= worst) continue;
                b[cnt++] = key;
                if (cnt == cap_) {
                    count_[row] = cnt;
                    compact(row);
                    cnt = count_[row];
                    worst = worst_[row];
                    worst_score = worst_score_[row];
                }
            }
        }
        c0 = c1;
    }
    count_[row] = cnt;
}

void TopkAccumulator::push(int64_t row0, int64_t nrows, const float* scores, int64_t ld, const int64_t* ids,
                           int64_t ncols, int n_threads) {
    parallel_for(nrows, n_threads, [&](int64_t r) { push_row(row0 + r, scores + r * ld, ids, ncols); });
}

void TopkAccumulator::finalize(float* out_scores, int64_t* out_ids, const int64_t* row_map, int n_threads) {
    parallel_for(nq_, n_threads, [&](int64_t row) {
        Key* b = buf_.get() + row * cap_;
        const int64_t n = std::min(count_[row], k_);
        if (count_[row] > k_) std::nth_element(b, b + (k_ - 1), b + count_[row]);
        sort_keys(b, n);
        const int64_t out_row = row_map != nullptr ? row_map[row] : row;
        float* os = out_scores + out_row * k_;
        int64_t* oi = out_ids + out_row * k_;
        for (int64_t j = 0; j < n; ++j) {
            os[j] = unpack_score(b[j]);
            oi[j] = unpack_id(b[j]);
        }
        for (int64_t j = n; j < k_; ++j) {
            os[j] = std::numeric_limits<float>::quiet_NaN();
            oi[j] = -1;
        }
    });
}

namespace {

// Scores are computed by our own micro-kernel (micro_tile, cpu/scores.h), not by a BLAS GEMM: BLAS
// rounds a product differently depending on where it sits in the matrix it is given, while
// micro_tile accumulates every (query, key) product one feature after another with the same
// multiply-adds wherever the pair sits. A score therefore depends on the two vectors alone,
// and results are bitwise independent of the thread count, the key block size and which
// queries share a call. Tiles are kQueryTile queries x kKeyTile keys; short tiles are padded.
constexpr int64_t kQueryTile = 128, kKeyTile = 512;

// A thread's buffers: the packed key tile and the [kQueryTile, kKeyTile] score tile.
struct TileBuffers {
    std::vector<float> k, scores;
};

// Keys [kn, d] (row stride ldk) into tb.k as panels [kn / 16][d][16], zero-padded.
void pack_key_tile(const float* keys, int64_t ldk, int64_t kn, int64_t d, TileBuffers& tb) {
    tb.k.resize(size_t((kn + kNR - 1) / kNR * kNR * d));
    pack_panels(keys, ldk, kn, d, tb.k.data());
}

// The [kQueryTile, kKeyTile] score tile of queries [qn, d] (row stride ldq) against the kn
// keys packed in tb.k: its first qn rows and kn columns hold Q K^T (the rest is not read).
float* score_packed(const float* queries, int64_t ldq, int64_t qn, int64_t kn, int64_t d, TileBuffers& tb) {
    tb.scores.resize(size_t(kQueryTile * kKeyTile));
    scores_packed(queries, ldq, qn, tb.k.data(), kn, d, tb.scores.data(), kKeyTile, 1);
    return tb.scores.data();
}

// L2 ranks by 2 q.x - |x|^2 (the |q|^2 term is the same for the whole row):
// q.x -> 2 q.x - |x|^2 for the first `cols` columns of a [rows, ld] tile.
void to_l2(float* tile, int64_t rows, int64_t ld, const float* sq, int64_t cols) {
    for (int64_t r = 0; r < rows; ++r) {
        float* t = tile + r * ld;
        for (int64_t c = 0; c < cols; ++c) t[c] = 2.f * t[c] - sq[c];
    }
}

}  // namespace

void topk(const float* queries, int64_t ldq, int64_t nq, const float* keys, int64_t ldk, int64_t nb,
          int64_t d, const int64_t* ids, const float* key_sq_norms, Metric metric, TopkAccumulator& acc,
          int64_t row0, int n_threads, Prefilter prefilter) {
    const int nt = resolve_threads(n_threads);
    // The first pass can pay only where each query meets many more keys than it keeps.
    // Auto does not even probe where k alone exceeds the candidate share it accepts: every
    // query re-scores at least its k best.
    const bool hopeless = prefilter == Prefilter::Auto && double(acc.k()) > kAutoDensity * double(nb);
    if (prefilter != Prefilter::Off && !hopeless && nb >= 8 * acc.k() && nb >= 2 * kKeyTile &&
        bf16_prefilter_available()) {
        const int64_t probe = prefilter == Prefilter::On ? nq : std::min(nq, kQueryTile * nt);
        const int64_t cand = topk_prefiltered(queries, ldq, probe, keys, ldk, nb, d, ids, key_sq_norms,
                                              metric, acc, row0, n_threads);
        if (probe == nq) return;
        if (double(cand) <= kAutoDensity * double(probe) * double(nb)) {
            topk_prefiltered(queries + probe * ldq, ldq, nq - probe, keys, ldk, nb, d, ids, key_sq_norms,
                             metric, acc, row0 + probe, n_threads, /*keys_packed=*/true);
            return;
        }
        queries += probe * ldq;  // too many candidates: the rest take the float32 path
        nq -= probe;
        row0 += probe;
    }
    const int64_t n_qtiles = (nq + kQueryTile - 1) / kQueryTile;
    const int64_t n_ktiles = (nb + kKeyTile - 1) / kKeyTile;
    if (n_qtiles >= 2 * nt || n_ktiles == 1) {
        // Many queries: each thread owns whole query tiles (so accumulator rows are never
        // shared; tiles t, t + nt, ...) and selects from each score tile while it is still in
        // cache. Key tiles go outermost, so each thread packs a key tile once for all its
        // query tiles rather than once per query tile.
        const int64_t nt_used = std::min<int64_t>(nt, n_qtiles);
        parallel_for(nt_used, nt, [&](int64_t t) {
            thread_local TileBuffers tb;
            for (int64_t k0 = 0; k0 < nb; k0 += kKeyTile) {
                const int64_t kn = std::min(kKeyTile, nb - k0);
                pack_key_tile(keys + k0 * ldk, ldk, kn, d, tb);
                for (int64_t qt = t; qt < n_qtiles; qt += nt_used) {
                    const int64_t q0 = qt * kQueryTile, qn = std::min(kQueryTile, nq - q0);
                    float* tile = score_packed(queries + q0 * ldq, ldq, qn, kn, d, tb);
                    if (metric == Metric::L2) to_l2(tile, qn, kKeyTile, key_sq_norms + k0, kn);
                    acc.push(row0 + q0, qn, tile, kKeyTile, ids + k0, kn, 1);
                }
            }
        });
        return;
    }
    // Few queries: the threads score different key tiles of the same query tile into one
    // shared strip [kQueryTile, nt * kKeyTile], then offer the strip row by row in parallel.
    const int64_t strip_tiles = std::min<int64_t>(nt, n_ktiles);
    const int64_t ld = strip_tiles * kKeyTile;
    float* strip = acc.scratch(size_t(kQueryTile * ld));
    for (int64_t q0 = 0; q0 < nq; q0 += kQueryTile) {
        const int64_t qn = std::min(kQueryTile, nq - q0);
        for (int64_t t0 = 0; t0 < n_ktiles; t0 += strip_tiles) {
            const int64_t nt_here = std::min(strip_tiles, n_ktiles - t0);
            parallel_for(nt_here, nt, [&](int64_t j) {
                thread_local TileBuffers tb;
                const int64_t k0 = (t0 + j) * kKeyTile, kn = std::min(kKeyTile, nb - k0);
                pack_key_tile(keys + k0 * ldk, ldk, kn, d, tb);
                const float* tile = score_packed(queries + q0 * ldq, ldq, qn, kn, d, tb);
                for (int64_t r = 0; r < qn; ++r)
                    std::copy(tile + r * kKeyTile, tile + r * kKeyTile + kKeyTile,
                              strip + r * ld + j * kKeyTile);
            });
            const int64_t k0 = t0 * kKeyTile, kn = std::min(nt_here * kKeyTile, nb - k0);
            if (metric == Metric::L2) {
                parallel_for(qn, nt, [&](int64_t r) { to_l2(strip + r * ld, 1, ld, key_sq_norms + k0, kn); });
            }
            acc.push(row0 + q0, qn, strip, ld, ids + k0, kn, nt);
        }
    }
}

}  // namespace simattr
