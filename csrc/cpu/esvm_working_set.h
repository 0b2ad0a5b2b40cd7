// One exemplar SVM's state on the CPU and the bookkeeping of its working set: the key rows
// whose dual variables are tracked, grown by the worst margin violators each round and pruned
// of rows that are clearly inactive. Internal to esvm_cpu.cpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>  // memcpy
#include <functional>
#include <utility>
#include <vector>

#include "common/dcd_math.h"
#include "common/packed_key.h"
#include "cpu/buffer_pool.h"
#include "cpu/newton.h"

namespace simattr {
namespace esvm_detail {

// One exemplar SVM. w has d + 1 entries: the last one multiplies the constant B.
struct Svm {
    std::vector<double> w;
    std::vector<double> alpha;   // [1 + ws.size()]: slot 0 the positive, slot t ws[t - 1]
    std::vector<int64_t> ws;     // working set: key rows whose dual variable is tracked
    std::vector<uint8_t> in_ws;  // [n] membership flags; key rows outside have alpha 0
    // The cached Gram matrix: K [gram_ld, gram_ld] row-major, whose rows and columns
    // gram_src[a] (a < gram_l; a itself when gram_src is empty) are slot a's. A prune only
    // renames (gram_src); layout_gram moves the entries once, when the next solve needs them.
    PooledDoubles K;
    int64_t gram_l = 0, gram_ld = 0;
    std::vector<int64_t> gram_src;
    NewtonWarm newton;  // the last Newton step's factor, rows named by key row (-1: q)
    int64_t iters = 0;
    double round_tol = 0.0;  // the tolerance of this round's sweeps (loose while growing)
    bool tight = false;      // the last solve met tol itself, not just round_tol
    bool converged = false;
    bool done = false;
    SplitMix64 rng{0};
};

// Dual gradient of a key row outside the working set (a negative with alpha 0), from its
// decision value f = w.x + w_B B.
inline double outside_gradient(float f) {
    return -double(f) - 1.0;
}

// Pool rows outside the working set whose gradient G = -f_i - 1 (alpha_i = 0) is below
// `margin`, worst first (ties of f: lower row first), at most `budget` of them. f holds
// w.x_i + w_B B for every key row.
inline std::vector<int64_t> violators(const float* f, const Svm& s, int64_t n, double margin,
                                      int64_t budget) {
    // G < margin needs f > -1 - margin up to one rounding of G in double: a float threshold
    // just below that passes every violator in one branch-free sweep (this ran once a round
    // over every key of the pool), and the exact test runs on what it passes only.
    const double t = -1.0 - margin;
    const float pre = std::nextafter(float(t - (1.0 + std::fabs(t)) * 0x1p-40), -INFINITY);
    thread_local std::vector<int64_t> pass;
    thread_local std::vector<Key> order;
    pass.resize(size_t(n));
    int64_t np = 0;
    for (int64_t i = 0; i < n; ++i) {
        pass[size_t(np)] = i;
        np += f[i] > pre;
    }
    // Worst first is f descending (G = -f - 1 never increases with f), then row ascending:
    // exactly the order of top-k's packed keys (common/packed_key.h, rows < 2^32), so
    // selection compares integers. (Only where |f| < 2^-29 can two floats give the same G in
    // double; they are then ordered by f rather than by row: either is a valid choice.)
    // Keys are made only for f >= floor: where far more pass than there are places (the main
    // job: ~1,600 for at most 128), a floor from a sample of their f a little above the
    // budget's rank. If at least `budget` violators reach it, the worst `budget` all do;
    // otherwise it is dropped and every violator gets a key.
    float floor = -INFINITY;
    if (np > 8 * budget) {
        constexpr int64_t kSample = 128;
        float sample[kSample];
        for (int64_t c = 0; c < kSample; ++c) sample[c] = f[pass[size_t(c * np / kSample)]];
        const int64_t rank = std::min<int64_t>(kSample - 1, 3 * budget * kSample / (2 * np) + 2);
        std::nth_element(sample, sample + rank, sample + kSample, std::greater<float>());
        floor = sample[rank];
    }
    for (;;) {
        order.clear();
        for (int64_t c = 0; c < np; ++c) {
            const int64_t i = pass[size_t(c)];
            if (f[i] >= floor && outside_gradient(f[i]) < margin && !s.in_ws[i])
                order.push_back(pack(f[i], i));
        }
        if (int64_t(order.size()) >= budget || floor == -INFINITY) break;
        floor = -INFINITY;
    }
    if (int64_t(order.size()) > budget) {
        std::nth_element(order.begin(), order.begin() + budget, order.end());
        order.resize(size_t(budget));
    }
    std::sort(order.begin(), order.end());
    std::vector<int64_t> out(order.size());
    for (size_t c = 0; c < order.size(); ++c) out[c] = unpack_id(order[c]);
    return out;
}

// Drops working-set rows that are clearly inactive (alpha 0, gradient above `keep`): they do
// not contribute to w, the sweeps would only shrink them again, and a row that starts to
// violate later is found again by the next GEMM check. Keeps the Gram matrix small.
inline void prune_working_set(Svm& s, const float* f, double keep) {
    std::vector<int64_t> kept_slots{0};  // slot 0, the positive, always stays
    size_t out = 0;
    for (size_t t = 0; t < s.ws.size(); ++t) {
        const int64_t i = s.ws[t];
        if (s.alpha[t + 1] == 0.0 && outside_gradient(f[i]) > keep) {
            s.in_ws[i] = 0;
            continue;
        }
        kept_slots.push_back(int64_t(t + 1));
        s.ws[out] = i;
        s.alpha[out + 1] = s.alpha[t + 1];
        ++out;
    }
    s.ws.resize(out);
    s.alpha.resize(out + 1);
    // The cached Gram block keeps the surviving slots, renamed: no entry moves here (the next
    // solve lays K out once, for its new size, where compacting here and relaying out there
    // moved every entry twice).
    const int64_t old_l = s.gram_l, kl = int64_t(kept_slots.size());
    if (old_l == 0 || kl == old_l) return;  // nothing pruned: K stays as it is
    if (!s.gram_src.empty())                // renamed before: compose
        for (int64_t& a : kept_slots) a = s.gram_src[size_t(a)];
    s.gram_src.swap(kept_slots);
    s.gram_l = kl;
}

// Lays the cached Gram block out as K [l, l] (l >= gram_l; stride l): slot a's row and
// column at a. Every kept entry is copied once into a fresh buffer from K's pool, in runs of
// consecutive source slots (where growing in place first copied the whole block to a larger
// buffer and then moved its rows again).
inline void layout_gram(Svm& s, int64_t l) {
    const int64_t g = s.gram_l, ld = s.gram_ld;
    const std::vector<int64_t>& src = s.gram_src;
    if (src.empty() && ld == l) return;
    const auto from = [&](int64_t a) { return src.empty() ? a : src[size_t(a)]; };
    thread_local std::vector<std::pair<int64_t, int64_t>> runs;  // (first slot, length)
    runs.clear();
    for (int64_t b = 0; b < g; ++b)
        if (b > 0 && from(b) == from(b - 1) + 1)
            ++runs.back().second;
        else
            runs.emplace_back(b, 1);
    PooledDoubles out(s.K.pool());
    out.reset(size_t(l * l));
    const double* K = s.K.data();
    for (int64_t a = 0; a < g; ++a)
        for (const auto& [b, len] : runs)
            std::memcpy(out.data() + a * l + b, K + from(a) * ld + from(b), size_t(len) * sizeof(double));
    s.K.swap(out);  // the old buffer goes back to the pool with `out`
    s.gram_src.clear();
    s.gram_ld = l;
}

inline void add_to_working_set(Svm& s, const std::vector<int64_t>& rows) {
    for (int64_t i : rows) {
        s.ws.push_back(i);
        s.alpha.push_back(0.0);
        s.in_ws[i] = 1;
    }
}

// Initial working set: the `count` key rows nearest the query in Euclidean distance, where
// an exemplar SVM's support vectors usually lie (ties: lower row first). f [n]: the query's
// inner products with the keys; sq_norms [n]: the keys' squared norms. |q - x|^2 =
// |q|^2 - 2 (f - |x|^2 / 2), so the nearest have the largest f - |x|^2 / 2.
inline std::vector<int64_t> nearest(const float* f, const double* sq_norms, int64_t n, int64_t count) {
    thread_local std::vector<double> closeness;
    closeness.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) closeness[size_t(i)] = double(f[i]) - 0.5 * sq_norms[i];
    std::vector<int64_t> order(n);
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    const double* c = closeness.data();
    std::partial_sort(order.begin(), order.begin() + count, order.end(),
                      [c](int64_t a, int64_t b) { return c[a] > c[b] || (c[a] == c[b] && a < b); });
    order.resize(count);
    return order;
}

}  // namespace esvm_detail
}  // namespace simattr
