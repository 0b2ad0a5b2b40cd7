// Exact top-k with a bfloat16 first pass: see cpu/prefilter.h for the contract.
//
// Why the candidates are enough (the bound). Let q, x be float32 vectors of length d, s the
// float32 score the exact micro-kernel computes, and s~ the first pass's score. VDPBF16PS reads
// q~ and x~: each element rounded to bfloat16 (round to nearest even), a bfloat16 denormal read
// as zero. Write dq = q - q~ and dx = x - x~ (both known exactly: we round the same way). Then
//   q.x - q~.x~ = q.dx + dq.x~,   so   |q.x - q~.x~| <= |q| |dx| + |dq| |x~|   (Cauchy-Schwarz).
// The products q~_c x~_c are exact in float32 (8-bit significands multiply into 16 bits) unless
// they fall below 2^-126, where the instruction flushes them (an error of at most 2^-126 each);
// the float32 sum (unit roundoff v = 2^-24, at most d' = d + 1 roundings per lane, d' counting
// the zero that pads an odd d, each flushed partial sum off by at most 2^-126) is within
// g(d') sum_c |q~_c x~_c| <= g(d') |q~| |x~| of the exact sum, g(n) = n v / (1 - n v). The exact
// path's s (one multiply-add per element, at most 2d roundings; gradual underflow at most
// 2^-149 per operation) is within g(2d) |q| |x| + 2d 2^-149 of the real q.x. So
//   |s - s~| <= E = |q| |dx| + |dq| |x~| + g(d') |q~| |x~| + g(2d) |q| |x| + 3 d' 2^-126.
// Typical |dx| is near 2^-8 / sqrt(3) |x| (not the worst case 2^-8 |x|), so E is about half of
// the plain 2 * 2^-8 |q| |x| bound, and so is the band of candidates it leaves. An element that
// overflows bfloat16 makes s~ non-finite; such a pair is always a candidate. E is evaluated in
// double from norms computed in double and rounded up, then inflated by 2^-30 of itself, far
// more than the rounding of that evaluation; the vectorised float test that comes first
// inflates every term by 2^-20 and so never drops a key the double test keeps.
//
// Selection. With E the bound of a pair, every score lies in [s~ - E, s~ + E]. The k-th best
// lower bound T of any set of keys is at most the k-th best exact score of that set, and so
// at most the final k-th best score; the accumulator's threshold is one too. A key of the
// final top k (ties included) therefore has s~ + E >= s >= T and is kept. Candidates get
// their float32 score from score_candidates (the exact micro-kernel's arithmetic, bit for
// bit: cpu/prefilter_kernels.h) and go to the accumulator, which orders them as it would have
// ordered all keys.
#include "cpu/prefilter.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "common/parallel.h"
#include "cpu/prefilter_kernels.h"

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
    double gd, g2d;  // g(d') and g(2d)
    double abs;      // 3 d' 2^-126
};

Bound make_bound(int64_t d) {
    const double v = std::ldexp(1.0, -24), dp = double(d + d % 2);
    auto g = [v](double n) { return n * v / (1.0 - n * v); };
    return Bound{g(dp), g(2.0 * d), 3 * dp * std::ldexp(1.0, -126)};
}

// The norms of a row the bound needs, each rounded up: |x|, |x - x~| and |x~|.
struct Norms {
    double x = 0, dx = 0, xt = 0;
};

Norms row_norms(const float* x, int64_t d) {
    Norms n;
    for (int64_t c = 0; c < d; ++c) {
        const uint32_t bits = bf16_bits(x[c]) << 16;
        float xt;
        std::memcpy(&xt, &bits, 4);
        if ((bits & 0x7f800000u) == 0) xt = 0.f;      // a bfloat16 denormal reads as zero
        const double xc = x[c], e = xc - double(xt);  // exact: xt is xc rounded to 8 bits
        n.x += xc * xc;
        n.dx += e * e;
        n.xt += double(xt) * double(xt);
    }
    const double up = 1 + std::ldexp(1.0, -40);
    n.x = std::sqrt(n.x) * up;
    n.dx = std::sqrt(n.dx) * up;
    n.xt = std::sqrt(n.xt) * up;
    return n;
}

// E for a query and a key (see the proof at the top), in double.
inline double pair_bound(const Bound& bd, const Norms& q, const Norms& x) {
    return (q.x * x.dx + q.dx * x.xt + bd.gd * q.xt * x.xt + bd.g2d * q.x * x.x + bd.abs) *
           (1 + std::ldexp(1.0, -30));
}

// Rounds up a non-negative double to a float that is at least it.
inline float float_up(double x) {
    float f = float(x);
    return double(f) >= x ? f : std::nextafter(f, std::numeric_limits<float>::infinity());
}

// The keys of one call, packed once for every query tile: bfloat16 pairs in panels
// [panels][dp][16] (zero keys pad the last pair of panels), each key's norms (for the double
// bound) and, rounded up by 2^-20 into floats for the vectorised filter, |dx|, |x~| and |x|.
struct PackedKeys {
    std::vector<uint32_t> pairs;
    std::vector<Norms> norms;
    std::vector<float> dx, xt, x;
};

inline float inflated(double v) {
    return float_up(v * (1 + std::ldexp(1.0, -20)));
}

void pack_keys(const float* keys, int64_t ldk, int64_t nb, int64_t d, PackedKeys& pk, int nt) {
    const int64_t dp = (d + 1) / 2, panels = (nb + 2 * kPanel - 1) / (2 * kPanel) * 2;
    pk.pairs.resize(size_t(panels * dp * kPanel));
    pk.norms.resize(size_t(nb));
    pk.dx.resize(size_t(nb));
    pk.xt.resize(size_t(nb));
    pk.x.resize(size_t(nb));
    parallel_for(panels, nt, [&](int64_t p) {
        uint32_t* dst = pk.pairs.data() + p * dp * kPanel;
        std::fill(dst, dst + dp * kPanel, 0u);
        for (int64_t r = p * kPanel; r < std::min(nb, (p + 1) * kPanel); ++r) {
            const float* src = keys + r * ldk;
            pack_pairs(src, d, dst + (r % kPanel), kPanel);
            const Norms n = row_norms(src, d);
            pk.norms[size_t(r)] = n;
            pk.dx[size_t(r)] = inflated(n.dx);
            pk.xt[size_t(r)] = inflated(n.xt);
            pk.x[size_t(r)] = inflated(n.x);
        }
    });
}

// A thread's scratch for one query tile.
struct Scratch {
    std::vector<uint32_t> q;                // packed query rows [kRows][dp]
    std::vector<float> approx;              // [kRows, kSub]
    std::vector<double> lower;              // lower bounds of one row's candidates
    std::vector<std::vector<double>> best;  // [kRows][<= k + kSub]: each row's best lower bounds
    std::vector<std::vector<std::pair<double, int64_t>>>
        pending;                                    // [kRows]: (upper, key row) not yet re-scored
    std::vector<std::pair<double, int64_t>> fresh;  // one row's candidates of one sub-block
    std::vector<int64_t> cand, rows;                // a row's candidates (local), their key rows
    std::vector<int64_t> cand_ids;
    std::vector<float> exact;
};

// Keys [k0, k0 + n) (k0 a multiple of 2 panels) against the tile's packed queries: approx [rows8, n].
void score_block(Scratch& s, int64_t rows8, int64_t dp, const PackedKeys& pk, int64_t k0, int64_t n) {
    const int64_t p0 = k0 / kPanel, panels = (n + 2 * kPanel - 1) / (2 * kPanel) * 2;
    for (int64_t p = 0; p < panels; p += 2)
        for (int64_t i = 0; i < rows8; i += 8)
            bf16_micro(s.q.data() + i * dp, dp, pk.pairs.data() + (p0 + p) * dp * kPanel,
                       s.approx.data() + i * kSub + p * kPanel, kSub);
}

QueryFactors query_factors(const Bound& bd, const Norms& q) {
    return QueryFactors{inflated(q.x), inflated(q.dx + bd.gd * q.xt), inflated(bd.g2d * q.x),
                        inflated(bd.abs)};
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

void prefilter_pair(const float* q, const float* x, int64_t d, float* approx, double* bound, float* exact) {
    const int64_t dp = (d + 1) / 2;
    std::vector<uint32_t> qp(size_t(8 * dp), 0u), kp(size_t(2 * kPanel * dp), 0u);
    pack_pairs(q, d, qp.data(), 1);
    pack_pairs(x, d, kp.data(), kPanel);
    std::vector<float> out(size_t(8 * 2 * kPanel));
    bf16_micro(qp.data(), dp, kp.data(), out.data(), 2 * kPanel);
    *approx = out[0];
    *bound = pair_bound(make_bound(d), row_norms(q, d), row_norms(x, d));
    const int64_t row = 0;
    score_candidates(q, x, d, &row, 1, d, exact);
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

int64_t topk_prefiltered(const float* queries, int64_t ldq, int64_t nq, const float* keys, int64_t ldk,
                         int64_t nb, int64_t d, const int64_t* ids, const float* key_sq_norms, Metric metric,
                         TopkAccumulator& acc, int64_t row0, int n_threads, bool keys_packed) {
    const Bound bd = make_bound(d);
    const int64_t dp = (d + 1) / 2, k = acc.k();
    const bool l2 = metric == Metric::L2;
    const double inf = std::numeric_limits<double>::infinity();
    const int nt = resolve_threads(n_threads);
    // The caller's thread keeps the buffers across the calls of a stream. (A thread_local
    // named inside the worker lambda would be each worker's own: take a reference here.)
    thread_local PackedKeys packed;
    PackedKeys& pk = packed;
    if (!keys_packed) pack_keys(keys, ldk, nb, d, pk, nt);
    std::atomic<int64_t> total{0};
    parallel_for((nq + kRows - 1) / kRows, nt, [&](int64_t t) {
        thread_local Scratch s;
        const int64_t q0 = t * kRows, qn = std::min(kRows, nq - q0), rows8 = (qn + 7) / 8 * 8;
        s.q.assign(size_t(rows8 * dp), 0u);
        Norms qnorm[kRows];
        QueryFactors qfac[kRows];
        double floor[kRows];
        for (int64_t r = 0; r < qn; ++r) {
            pack_pairs(queries + (q0 + r) * ldq, d, s.q.data() + r * dp, 1);
            qnorm[r] = row_norms(queries + (q0 + r) * ldq, d);
            qfac[r] = query_factors(bd, qnorm[r]);
            floor[r] = double(acc.threshold(row0 + q0 + r));  // a lower bound of the final k-th score
        }
        s.approx.resize(size_t(kRows * kSub));
        s.cand.resize(size_t(kSub));
        s.best.resize(size_t(kRows));
        s.pending.resize(size_t(kRows));
        int64_t pairs = 0, candidates = 0;
        // The first chunk is short: every key of it passes the empty floor, so it only needs
        // to be long enough to set one (4k keys); the rest go kSub at a time.
        const int64_t first =
            std::min(kSub, (std::max<int64_t>(4 * k, 512) + 2 * kPanel - 1) / (2 * kPanel) * 2 * kPanel);
        for (int64_t k0 = 0, n = 0; k0 < nb; k0 += n) {
            n = std::min(k0 == 0 ? first : kSub, nb - k0);
            score_block(s, rows8, dp, pk, k0, n);
            for (int64_t r = 0; r < qn; ++r) {
                const float* a = s.approx.data() + r * kSub;
                const int64_t passed =
                    float_filter(a, n, qfac[r], pk.dx.data() + k0, pk.xt.data() + k0, pk.x.data() + k0,
                                 l2 ? key_sq_norms + k0 : nullptr, floor[r], s.cand.data());
                // The double bound on the few that pass: each key's (upper bound, key row) and its
                // lower bound. Scores are in the metric's units (L2: 2 q.x - |x|^2, whose float32
                // subtraction adds one rounding); a non-finite score is always a candidate.
                s.lower.clear();
                s.fresh.clear();
                for (int64_t c = 0; c < passed; ++c) {
                    const int64_t j = s.cand[size_t(c)];
                    double e = pair_bound(bd, qnorm[r], pk.norms[size_t(k0 + j)]);
                    double sc = double(a[j]);
                    if (l2) {
                        sc = 2 * sc - double(key_sq_norms[k0 + j]);
                        e = (2 * e + std::ldexp(std::fabs(sc) + 2 * e, -24)) * (1 + std::ldexp(1.0, -30));
                    }
                    if (!std::isfinite(sc)) {
                        s.fresh.emplace_back(inf, k0 + j);
                        s.lower.push_back(-inf);
                    } else if (sc + e >= floor[r]) {
                        s.fresh.emplace_back(sc + e, k0 + j);
                        s.lower.push_back(sc - e);
                    }
                }
                // The k-th best lower bound of all keys seen so far raises the floor; the k best
                // are kept per row (best[r]) for the next sub-block.
                std::vector<double>& best = s.best[size_t(r)];
                if (k0 == 0) best.clear();
                best.insert(best.end(), s.lower.begin(), s.lower.end());
                if (int64_t(best.size()) >= 2 * k ||
                    (k0 == 0 && int64_t(best.size()) >= k)) {  // amortised cut
                    std::nth_element(best.begin(), best.begin() + (k - 1), best.end(),
                                     std::greater<double>());
                    best.resize(size_t(k));
                    floor[r] = std::max(floor[r], best[size_t(k - 1)]);
                }
                // Pending candidates of this call that still reach the (raised) floor; re-scored
                // once all keys are seen, when the floor is highest.
                std::vector<std::pair<double, int64_t>>& pend = s.pending[size_t(r)];
                if (k0 == 0) pend.clear();
                size_t kept = 0;
                for (const auto& c : pend)
                    if (c.first >= floor[r]) pend[kept++] = c;
                pend.resize(kept);
                for (const auto& c : s.fresh)
                    if (c.first >= floor[r]) pend.push_back(c);
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
            score_candidates(queries + (q0 + r) * ldq, keys, ldk, s.rows.data(), m, d, s.exact.data());
            if (l2)  // as the exact path's to_l2, operation for operation
                for (int64_t c = 0; c < m; ++c)
                    s.exact[size_t(c)] = 2.f * s.exact[size_t(c)] - key_sq_norms[s.rows[size_t(c)]];
            acc.push(row0 + q0 + r, 1, s.exact.data(), 0, s.cand_ids.data(), m, 1);
            candidates += m;
        }
        g_pairs += pairs;
        g_candidates += candidates;
        total += candidates;
    });
    return total.load();
}

}  // namespace simattr
