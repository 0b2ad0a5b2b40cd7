// Exact top-k with a bfloat16 first pass: see cpu/prefilter.h for the contract, and
// cpu/prefilter_bound.h for the bound that makes it exact.
//
// Selection. Every pair's float32 score s lies in [lo, up], the bounds bound_filter derives
// from the approximate score. A value that at least k lower bounds of a set of keys reach is
// at most the k-th best exact score of that set, and so at most the final k-th best; the
// accumulator's k-th best exact score is one too. A key of the final top k (ties included)
// therefore has up >= s >= that floor and stays a candidate. Candidates get their float32
// score from score_candidates (the exact micro-kernel's arithmetic, bit for bit:
// cpu/prefilter_kernels.h) and go to the accumulator, which orders them as it would have
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
#include "cpu/prefilter_amx.h"
#include "cpu/prefilter_bound.h"
#include "cpu/prefilter_candidates.h"
#include "cpu/prefilter_kernels.h"

namespace simattr {

namespace {

using namespace prefilter_detail;

// Queries per tile (one thread owns a tile): each tile re-scores its candidates in one more
// sweep over the keys, from memory where they exceed the caches, so larger tiles read them
// fewer times (512 rather than 128: 10-15% faster at k = 10, 100 and 1280 on 10,000 x 50,000
// x 512), but every thread gets at least two tiles, and a tile has at least 128 queries.
constexpr int64_t kMaxRows = 512, kMinRows = 128;
// Scratch of approximate scores per tile, [rows, sub] floats (4 MiB): keys scored before
// one selection, sub = this / rows.
constexpr int64_t kScratchFloats = int64_t(1) << 20;
constexpr int64_t kPanel = 16;  // keys per packed panel (one 512-bit lane set)

std::atomic<int64_t> g_pairs{0}, g_candidates{0};

// The keys of one call, packed once for every query tile: bfloat16 pairs in panels
// [panels][dpp][16] (dpp >= dp pairs a key, zero-padded; zero keys pad the last pair of
// panels) and, inflated into floats for bound_filter, each key's |x - x~|, |x~| and |x|.
struct PackedKeys {
    std::vector<uint32_t> pairs;
    std::vector<float> dx, xt, x;
};

void pack_keys(const float* keys, int64_t ldk, int64_t nb, int64_t d, int64_t dpp, PackedKeys& pk, int nt) {
    const int64_t panels = (nb + 2 * kPanel - 1) / (2 * kPanel) * 2;
    pk.pairs.resize(size_t(panels * dpp * kPanel));
    pk.dx.resize(size_t(nb));
    pk.xt.resize(size_t(nb));
    pk.x.resize(size_t(nb));
    parallel_for(panels, nt, [&](int64_t p) {
        uint32_t* dst = pk.pairs.data() + p * dpp * kPanel;
        std::fill(dst, dst + dpp * kPanel, 0u);
        for (int64_t r = p * kPanel; r < std::min(nb, (p + 1) * kPanel); ++r) {
            const float* src = keys + r * ldk;
            pack_pairs(src, d, dst + (r % kPanel), kPanel);
            const Norms n = row_norms(src, d);
            pk.dx[size_t(r)] = inflated(n.dx);
            pk.xt[size_t(r)] = inflated(n.xt);
            pk.x[size_t(r)] = inflated(n.x);
        }
    });
}

// A thread's scratch for one query tile.
struct Scratch {
    int64_t sub = 0;                         // keys per sub-block (the row stride of approx)
    std::vector<uint32_t> q;                 // packed query rows [rows][dpp]
    std::vector<float> approx;               // [rows, sub]
    std::vector<int32_t> idx;                // one row's passing keys of one sub-block [sub + 16]
    std::vector<float> up, lo;               // their bounds [sub + 16]
    std::vector<std::vector<float>> best;    // [rows][<= 2k]: each row's best lower bounds
    std::vector<Pending> pending;            // [rows]
    std::vector<std::vector<int64_t>> rows;  // [rows]: the key rows to re-score, ascending
    std::vector<std::vector<float>> exact;   // [rows]: their float32 scores
    std::vector<float> sel;
    std::vector<int64_t> cand_ids;
};

// Keys [k0, k0 + n) (k0 a multiple of 2 panels) against the tile's packed queries (rows of
// them, a multiple of 32 on AMX and of 8 otherwise): approx [rows, n].
void score_block(Scratch& s, int64_t rows, int64_t dpp, int amx, const PackedKeys& pk, int64_t k0,
                 int64_t n) {
    const int64_t p0 = k0 / kPanel, panels = (n + 2 * kPanel - 1) / (2 * kPanel) * 2;
    const uint32_t* keys = pk.pairs.data() + p0 * dpp * kPanel;
    if (amx) {  // prefilter_amx_mode(): 1 the tiles, 2 their emulation (tests)
        (amx == 1 ? amx_block_tiles : amx_block_emulated)(s.q.data(), rows, dpp, keys, panels / 2,
                                                          s.approx.data(), s.sub);
        return;
    }
    for (int64_t p = 0; p < panels; p += 2)
        for (int64_t i = 0; i < rows; i += 8)
            bf16_micro(s.q.data() + i * dpp, dpp, keys + p * dpp * kPanel,
                       s.approx.data() + i * s.sub + p * kPanel, s.sub);
}

// One chunk's outcome for tile row r (keys from k0 on): bound_filter left `passed` keys
// (s.idx, s.up) and n_lo lower bounds reaching the floor (s.lo). A value that at least k lower
// bounds of the keys seen so far reach (kth_floor: close below their k-th best) raises the
// floor, and lower bounds below it can no longer matter; every passing key joins the row's
// pending candidates (those below a floor just raised go at the next cut).
void offer_chunk(Scratch& s, int64_t r, int64_t k0, int64_t k, int64_t passed, int64_t n_lo, float& floor) {
    std::vector<float>& best = s.best[size_t(r)];
    Pending& pend = s.pending[size_t(r)];
    if (k0 == 0) {
        best.clear();
        pend.clear();
    }
    best.insert(best.end(), s.lo.begin(), s.lo.begin() + n_lo);
    if (int64_t(best.size()) >= 2 * k || (k0 == 0 && int64_t(best.size()) >= k)) {  // amortised
        const float f = floor = std::max(floor, kth_floor(best.data(), int64_t(best.size()), k, s.sel));
        size_t kept = 0;
        for (float v : best) {  // branch-free: most go
            best[kept] = v;
            kept += v >= f;
        }
        best.resize(kept);
    }
    pend.up.insert(pend.up.end(), s.up.begin(), s.up.begin() + passed);
    const size_t at = pend.row.size();
    pend.row.resize(at + size_t(passed));
    for (int64_t c = 0; c < passed; ++c) pend.row[at + size_t(c)] = k0 + s.idx[size_t(c)];
    if (pend.up.size() > 2 * pend.clean + size_t(s.sub)) pend.cut(floor);  // bounded memory
}

// Raises `floor` to the accumulator row's k-th best exact score, a lower bound of its final
// one (-inf before k were offered; a NaN score, from inputs that overflow, is no bound).
inline void raise_floor(float& floor, TopkAccumulator& acc, int64_t row) {
    const float kth = acc.kth_score(row);
    if (kth > floor) floor = kth;
}

// Exact scores of every tile row's candidates (s.rows[r], ascending, into s.exact[r]), swept
// over the keys in blocks of 4 MiB: a block's rows come from memory once and then serve
// every query of the tile from cache, where query by query nearly every candidate row would
// be a miss. A group of 16 may straddle a block boundary (its first rows are still cached).
void rescore_tile(Scratch& s, int64_t qn, const float* queries, int64_t ldq, const float* keys, int64_t ldk,
                  int64_t nb, int64_t d) {
    const int64_t block = std::max<int64_t>(64, (int64_t(4) << 20) / (4 * d));
    int64_t pos[kMaxRows] = {};
    for (int64_t r = 0; r < qn; ++r) s.exact[size_t(r)].resize(s.rows[size_t(r)].size());
    for (int64_t end = block;; end += block) {
        const bool last = end >= nb;
        for (int64_t r = 0; r < qn; ++r) {
            const std::vector<int64_t>& rows = s.rows[size_t(r)];
            const int64_t stop =
                last ? int64_t(rows.size())
                     : std::lower_bound(rows.begin() + pos[r], rows.end(), end) - rows.begin();
            const int64_t m = last ? stop - pos[r] : (stop - pos[r]) / 16 * 16;
            if (m > 0)
                score_candidates(queries + r * ldq, keys, ldk, rows.data() + pos[r], m, d,
                                 s.exact[size_t(r)].data() + pos[r]);
            pos[r] += m;
        }
        if (last) return;
    }
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

PairBounds prefilter_pair(const float* q, const float* x, int64_t d) {
    const int64_t dp = (d + 1) / 2;
    std::vector<uint32_t> qp(size_t(8 * dp), 0u), kp(size_t(2 * kPanel * dp), 0u);
    pack_pairs(q, d, qp.data(), 1);
    pack_pairs(x, d, kp.data(), kPanel);
    std::vector<float> out(size_t(8 * 2 * kPanel));
    bf16_micro(qp.data(), dp, kp.data(), out.data(), 2 * kPanel);
    PairBounds pb;
    pb.approx = out[0];
    const Bound bd = make_bound(d);
    const Norms nq = row_norms(q, d), nx = row_norms(x, d);
    pb.bound = pair_bound(bd, nq, nx);
    const int64_t row = 0;
    score_candidates(q, x, d, &row, 1, d, &pb.exact);
    double sq = 0;
    for (int64_t c = 0; c < d; ++c) sq += double(x[c]) * x[c];
    pb.sq = float(sq);
    const QueryFactors f = query_factors(bd, nq);
    const float dx = inflated(nx.dx), xt = inflated(nx.xt), xn = inflated(nx.x);
    const float fl = -std::numeric_limits<float>::infinity();
    int32_t idx[17];
    float up[17], lo[17];
    int64_t n_lo = 0;
    bound_filter(&pb.approx, 1, f, &dx, &xt, &xn, nullptr, fl, idx, up, lo, &n_lo);
    pb.up = up[0];
    pb.lo = lo[0];
    bound_filter(&pb.approx, 1, f, &dx, &xt, &xn, &pb.sq, fl, idx, up, lo, &n_lo);
    pb.up_l2 = up[0];
    pb.lo_l2 = lo[0];
    return pb;
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
    // AMX tiles take 16 pairs a step: rows are padded to whole tiles there.
    const int amx = prefilter_amx_mode();
    const int64_t dp = (d + 1) / 2, dpp = amx ? (dp + 15) / 16 * 16 : dp, k = acc.k();
    const bool l2 = metric == Metric::L2;
    const int nt = resolve_threads(n_threads);
    // The caller's thread keeps the buffers across the calls of a stream. (A thread_local
    // named inside the worker lambda would be each worker's own: take a reference here.)
    thread_local PackedKeys packed;
    PackedKeys& pk = packed;
    if (!keys_packed) pack_keys(keys, ldk, nb, d, dpp, pk, nt);
    std::atomic<int64_t> total{0};
    const int64_t tile = std::clamp<int64_t>(nq / (2 * int64_t(nt)) / 32 * 32, kMinRows, kMaxRows);
    const int64_t sub = kScratchFloats / tile / (2 * kPanel) * (2 * kPanel);
    parallel_for((nq + tile - 1) / tile, nt, [&](int64_t t) {
        thread_local Scratch tls;
        Scratch& s = tls;  // one TLS lookup, not one per use
        const int64_t q0 = t * tile, qn = std::min(tile, nq - q0),
                      rows = amx ? (qn + 31) / 32 * 32 : (qn + 7) / 8 * 8;
        s.sub = sub;
        const float* tq = queries + q0 * ldq;
        s.q.assign(size_t(rows * dpp), 0u);
        QueryFactors qfac[kMaxRows];
        float floor[kMaxRows];
        for (int64_t r = 0; r < qn; ++r) {
            pack_pairs(tq + r * ldq, d, s.q.data() + r * dpp, 1);
            qfac[r] = query_factors(bd, row_norms(tq + r * ldq, d));
            floor[r] = -std::numeric_limits<float>::infinity();
            raise_floor(floor[r], acc, row0 + q0 + r);  // earlier calls' exact k-th score
        }
        s.approx.resize(size_t(rows * sub));
        s.idx.resize(size_t(sub + 16));
        s.up.resize(size_t(sub + 16));
        s.lo.resize(size_t(sub + 16));
        s.best.resize(size_t(tile));
        s.pending.resize(size_t(tile));
        s.rows.resize(size_t(tile));
        s.exact.resize(size_t(tile));
        int64_t candidates = 0;
        // The first chunk is short: every key of it passes the empty floor, so it only needs
        // to be long enough to set one (4k keys); the rest go sub at a time.
        const int64_t first =
            std::min(sub, (std::max<int64_t>(4 * k, 512) + 2 * kPanel - 1) / (2 * kPanel) * 2 * kPanel);
        for (int64_t k0 = 0, n = 0; k0 < nb; k0 += n) {
            n = std::min(k0 == 0 ? first : sub, nb - k0);
            score_block(s, rows, dpp, amx, pk, k0, n);
            for (int64_t r = 0; r < qn; ++r) {
                int64_t n_lo = 0;
                const int64_t passed =
                    bound_filter(s.approx.data() + r * sub, n, qfac[r], pk.dx.data() + k0, pk.xt.data() + k0,
                                 pk.x.data() + k0, l2 ? key_sq_norms + k0 : nullptr, floor[r], s.idx.data(),
                                 s.up.data(), s.lo.data(), &n_lo);
                offer_chunk(s, r, k0, k, passed, n_lo, floor[r]);
            }
        }
        // Re-scoring, once every key is seen and the floors are highest, in two rounds. First
        // k of each row's candidates with about the highest upper bounds (the likely top k):
        // once they are offered, the accumulator's k-th best exact score is a floor about E
        // above the k-th best lower bound. Then the other candidates whose upper bound
        // reaches that floor.
        for (int64_t round = 0; round < 2; ++round) {
            for (int64_t r = 0; r < qn; ++r) {
                Pending& pend = s.pending[size_t(r)];
                std::vector<int64_t>& rows = s.rows[size_t(r)];
                rows.clear();
                pend.cut(floor[r]);
                const int64_t c = int64_t(pend.up.size());
                if (round == 1 || c <= k) {  // all that is left
                    rows.swap(pend.row);
                    pend.clear();
                    continue;
                }
                take_likely_top(pend, k, rows, s.sel);
            }
            rescore_tile(s, qn, tq, ldq, keys, ldk, nb, d);
            for (int64_t r = 0; r < qn; ++r) {
                const std::vector<int64_t>& rows = s.rows[size_t(r)];
                std::vector<float>& exact = s.exact[size_t(r)];
                const int64_t m = int64_t(rows.size());
                if (l2)  // as the exact path's to_l2, operation for operation
                    for (int64_t c = 0; c < m; ++c)
                        exact[size_t(c)] = 2.f * exact[size_t(c)] - key_sq_norms[rows[size_t(c)]];
                s.cand_ids.resize(size_t(m));
                for (int64_t c = 0; c < m; ++c) s.cand_ids[size_t(c)] = ids[rows[size_t(c)]];
                acc.push(row0 + q0 + r, 1, exact.data(), 0, s.cand_ids.data(), m, 1);
                candidates += m;
                if (round == 0 && !s.pending[size_t(r)].up.empty()) raise_floor(floor[r], acc, row0 + q0 + r);
            }
        }
        g_pairs += qn * nb;
        g_candidates += candidates;
        total += candidates;
    });
    return total.load();
}

}  // namespace simattr
