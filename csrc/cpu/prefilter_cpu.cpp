// Exact top-k with a bfloat16 first pass: see cpu/prefilter.h for the contract.
//
// Why the candidates are enough (the bound). Let q, x be float32 vectors of length d, s the
// float32 score the exact micro-kernel computes, and s~ the first pass's score: each element
// rounded to bfloat16 (round to nearest even, unit roundoff u = 2^-8, so |bf(a) - a| <= u|a|
// for normal a), products formed exactly in float32 (8-bit significands multiply into 16 bits),
// and summed in float32 by VDPBF16PS (unit roundoff v = 2^-24, at most d' = d + 1 roundings per
// lane, d' counting the zero element that pads an odd d). Then
//   |bf(q_c) bf(x_c) - q_c x_c| <= (2u + u^2) |q_c x_c|,
//   |fl(sum) - sum| <= g(d') * sum_c |bf(q_c) bf(x_c)| <= g(d') (1 + u)^2 sum_c |q_c x_c|,
// with g(n) = n v / (1 - n v), and by Cauchy-Schwarz sum_c |q_c x_c| <= |q| |x|. The exact
// path's s (one multiply-add per element, at most 2d roundings) is within g(2d) |q| |x| of the
// real dot product. So |s - s~| <= c |q| |x| with c = 2u + u^2 + g(d') (1 + u)^2 + g(2d). The
// instruction treats bfloat16 denormals as zero and flushes denormal results: every element
// so flushed moves a product by at most 2^-126 times the other element, every flushed product
// or partial sum by at most 2^-126, which adds eta = 2^-126 (sqrt(d) (|q| + |x|) + 3 d') (the
// exact path's own gradual underflow, at most 2^-149 per operation, fits inside it). An
// element that overflows bfloat16 makes s~ non-finite; such a pair is always a candidate.
// The bound is evaluated in double from norms computed in double, and inflated by 2^-30 of
// itself, far more than the rounding of that evaluation.
//
// Selection. With E the bound of a pair, every score lies in [s~ - E, s~ + E]. The k-th best
// lower bound T of any set of keys is at most the k-th best exact score of that set, and so
// at most the final k-th best score; the accumulator's threshold is one too. A key of the
// final top k (ties included) therefore has s~ + E >= s >= T and is kept. Candidates get
// their float32 score from score_rows (the exact micro-kernel, bit for bit) and go to the
// accumulator, which orders them as it would have ordered all keys.
#include "cpu/prefilter.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "common/parallel.h"

namespace simattr {

namespace {

constexpr int64_t kRows = 128;  // queries per tile, owned by one thread
constexpr int64_t kSub = 8192;  // keys scored before one selection: [kRows, kSub] floats of scratch
constexpr int64_t kPanel = 16;  // keys per packed panel (one 512-bit lane set)

std::atomic<int64_t> g_pairs{0}, g_candidates{0};

// bfloat16 bits of f, rounded to nearest even (inputs are finite; huge ones round to inf).
inline uint32_t bf16_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return u >> 16;
}

// Row `src` [d] as d' / 2 pairs of bfloat16 (element 2c in the low half), zero-padded.
inline void pack_pairs(const float* src, int64_t d, uint32_t* dst, int64_t stride) {
    for (int64_t c = 0; c < d / 2; ++c)
        dst[c * stride] = bf16_bits(src[2 * c]) | (bf16_bits(src[2 * c + 1]) << 16);
    if (d % 2) dst[(d / 2) * stride] = bf16_bits(src[d - 1]);
}

// out[8, 32] (row stride ldo) += 8 query rows (pairs [8][dp], row stride dp) . two panels of
// 16 keys ([dp][16] pairs each, adjacent).
__attribute__((target("avx512f,avx512bf16"))) void bf16_micro(const uint32_t* q, int64_t dp,
                                                              const uint32_t* panels, float* out,
                                                              int64_t ldo) {
    __m512 a[8][2];
    for (int i = 0; i < 8; ++i) a[i][0] = a[i][1] = _mm512_setzero_ps();
    const uint32_t* p1 = panels + dp * kPanel;
    for (int64_t c = 0; c < dp; ++c) {
        const __m512bh k0 = (__m512bh)_mm512_loadu_si512(panels + c * kPanel);
        const __m512bh k1 = (__m512bh)_mm512_loadu_si512(p1 + c * kPanel);
        for (int i = 0; i < 8; ++i) {
            const __m512bh b = (__m512bh)_mm512_set1_epi32(int(q[i * dp + c]));
            a[i][0] = _mm512_dpbf16_ps(a[i][0], b, k0);
            a[i][1] = _mm512_dpbf16_ps(a[i][1], b, k1);
        }
    }
    for (int i = 0; i < 8; ++i) {
        _mm512_storeu_ps(out + i * ldo, a[i][0]);
        _mm512_storeu_ps(out + i * ldo + kPanel, a[i][1]);
    }
}

struct Bound {
    double c;     // relative part, times |q| |x|
    double eta;   // 2^-126, the absolute part's unit
    double sqd;   // sqrt(d)
    double dpad;  // d'
};

Bound make_bound(int64_t d) {
    const double u = std::ldexp(1.0, -8), v = std::ldexp(1.0, -24), dp = double(d + d % 2);
    auto g = [v](double n) { return n * v / (1.0 - n * v); };
    Bound b;
    b.c = (2 * u + u * u + g(dp) * (1 + u) * (1 + u) + g(2.0 * d)) * (1 + std::ldexp(1.0, -30));
    b.eta = std::ldexp(1.0, -126) * (1 + std::ldexp(1.0, -30));
    b.sqd = std::sqrt(double(d));
    b.dpad = dp;
    return b;
}

double norm_up(const float* x, int64_t d) {
    double s = 0;
    for (int64_t c = 0; c < d; ++c) s += double(x[c]) * double(x[c]);
    return std::sqrt(s) * (1 + std::ldexp(1.0, -40));
}

// A thread's scratch for one query tile.
struct Scratch {
    std::vector<uint32_t> q, k;             // packed query rows [kRows][dp], key panels [kSub/16][dp][16]
    std::vector<float> approx;              // [kRows, kSub]
    std::vector<double> knorm, lower;       // [kSub]; lower bounds of one row's candidates
    std::vector<std::vector<double>> best;  // [kRows][<= k + kSub]: each row's best lower bounds
    std::vector<std::vector<std::pair<double, int64_t>>> pending;  // [kRows]: candidates not yet re-scored
    std::vector<int64_t> cand, rows;  // a row's candidates (local), their key rows
    std::vector<int64_t> cand_ids;
    std::vector<float> exact, buf;
};

// Keys [k0, k0 + n) of the block against the tile's packed queries: approx [rows8, n].
void score_block(Scratch& s, int64_t rows8, int64_t dp, const float* keys, int64_t ldk, int64_t k0, int64_t n,
                 int64_t d) {
    const int64_t panels = (n + 2 * kPanel - 1) / (2 * kPanel) * 2;  // whole panel pairs
    s.k.assign(size_t(panels * dp * kPanel), 0u);
    for (int64_t r = 0; r < n; ++r) {
        const float* src = keys + (k0 + r) * ldk;
        pack_pairs(src, d, s.k.data() + (r / kPanel) * dp * kPanel + (r % kPanel), kPanel);
        s.knorm[size_t(r)] = norm_up(src, d);
    }
    for (int64_t p = 0; p < panels; p += 2)
        for (int64_t i = 0; i < rows8; i += 8)
            bf16_micro(s.q.data() + i * dp, dp, s.k.data() + p * dp * kPanel,
                       s.approx.data() + i * kSub + p * kPanel, kSub);
}

}  // namespace

bool bf16_prefilter_available() {
#if defined(__x86_64__) && defined(__GNUC__)
    static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
    return ok;
#else
    return false;
#endif
}

PrefilterStats prefilter_stats() {
    PrefilterStats st;
    st.pairs = g_pairs.load();
    st.candidates = g_candidates.load();
    return st;
}

void reset_prefilter_stats() {
    g_pairs = 0;
    g_candidates = 0;
}

void topk_prefiltered(const float* queries, int64_t ldq, int64_t nq, const float* keys, int64_t ldk,
                      int64_t nb, int64_t d, const int64_t* ids, const float* key_sq_norms, Metric metric,
                      TopkAccumulator& acc, int64_t row0, int n_threads) {
    const Bound bd = make_bound(d);
    const int64_t dp = (d + 1) / 2, k = acc.k();
    const bool l2 = metric == Metric::L2;
    const double inf = std::numeric_limits<double>::infinity();
    parallel_for((nq + kRows - 1) / kRows, resolve_threads(n_threads), [&](int64_t t) {
        thread_local Scratch s;
        const int64_t q0 = t * kRows, qn = std::min(kRows, nq - q0), rows8 = (qn + 7) / 8 * 8;
        s.q.assign(size_t(rows8 * dp), 0u);
        double qnorm[kRows], qeta[kRows], floor[kRows];
        for (int64_t r = 0; r < qn; ++r) {
            pack_pairs(queries + (q0 + r) * ldq, d, s.q.data() + r * dp, 1);
            qnorm[r] = norm_up(queries + (q0 + r) * ldq, d);
            qeta[r] = bd.eta * (bd.sqd * qnorm[r] + 3 * bd.dpad);
            floor[r] = double(acc.threshold(row0 + q0 + r));  // a lower bound of the final k-th score
        }
        s.approx.resize(size_t(kRows * kSub));
        s.knorm.resize(size_t(kSub));
        s.best.resize(size_t(kRows));
        s.pending.resize(size_t(kRows));
        int64_t pairs = 0, candidates = 0;
        for (int64_t k0 = 0; k0 < nb; k0 += kSub) {
            const int64_t n = std::min(kSub, nb - k0);
            score_block(s, rows8, dp, keys, ldk, k0, n, d);
            for (int64_t r = 0; r < qn; ++r) {
                const float* a = s.approx.data() + r * kSub;
                const double cq = bd.c * qnorm[r];
                // (score, bound) of key j for this row: the approximate score in the metric's
                // units (L2: 2 q.x - |x|^2, whose float32 subtraction adds one rounding).
                auto scored = [&](int64_t j, double& e) {
                    e = cq * s.knorm[size_t(j)] + qeta[r] + bd.eta * bd.sqd * s.knorm[size_t(j)];
                    double sc = double(a[j]);
                    if (l2) {
                        sc = 2 * sc - double(key_sq_norms[k0 + j]);
                        e = (2 * e + std::ldexp(std::fabs(sc) + 2 * e, -24)) * (1 + std::ldexp(1.0, -30));
                    }
                    return sc;
                };
                s.cand.clear();
                s.lower.clear();
                for (int64_t j = 0; j < n; ++j) {  // keys whose upper bound reaches the floor
                    double e;
                    const double sc = scored(j, e);
                    if (!std::isfinite(sc) || sc + e >= floor[r]) {
                        s.cand.push_back(j);
                        s.lower.push_back(std::isfinite(sc) ? sc - e : -inf);
                    }
                }
                // The k-th best lower bound of all keys seen so far raises the floor; the k best
                // are kept per row (best[r]) for the next sub-block.
                std::vector<double>& best = s.best[size_t(r)];
                if (k0 == 0) best.clear();
                best.insert(best.end(), s.lower.begin(), s.lower.end());
                if (int64_t(best.size()) >= k) {
                    std::nth_element(best.begin(), best.begin() + (k - 1), best.end(),
                                     std::greater<double>());
                    best.resize(size_t(k));
                    floor[r] = std::max(floor[r], best[size_t(k - 1)]);
                }
                // Pending candidates (upper bound, key row) of this call that still reach the
                // floor; re-scored once all keys are seen, when the floor is highest.
                std::vector<std::pair<double, int64_t>>& pend = s.pending[size_t(r)];
                if (k0 == 0) pend.clear();
                size_t kept = 0;
                for (const auto& c : pend)
                    if (c.first >= floor[r]) pend[kept++] = c;
                pend.resize(kept);
                for (const int64_t j : s.cand) {
                    double e;
                    const double sc = scored(j, e);
                    if (!std::isfinite(sc)) {
                        pend.emplace_back(inf, k0 + j);
                    } else if (sc + e >= floor[r]) {
                        pend.emplace_back(sc + e, k0 + j);
                    }
                }
            }
            pairs += qn * n;
        }
        for (int64_t r = 0; r < qn; ++r) {
            s.rows.clear();
            s.cand_ids.clear();
            for (const auto& c : s.pending[size_t(r)])
                if (c.first >= floor[r]) {
                    s.rows.push_back(c.second);
                    s.cand_ids.push_back(ids[c.second]);
                }
            const int64_t m = int64_t(s.rows.size());
            s.exact.resize(size_t(m));
            score_rows(queries + (q0 + r) * ldq, keys, ldk, s.rows.data(), m, d, s.exact.data(), s.buf);
            if (l2)  // as the exact path's to_l2, operation for operation
                for (int64_t c = 0; c < m; ++c)
                    s.exact[size_t(c)] = 2.f * s.exact[size_t(c)] - key_sq_norms[s.rows[size_t(c)]];
            acc.push(row0 + q0 + r, 1, s.exact.data(), 0, s.cand_ids.data(), m, 1);
            candidates += m;
        }
        g_pairs += pairs;
        g_candidates += candidates;
    });
}

}  // namespace simattr
