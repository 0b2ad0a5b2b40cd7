#include "cpu/newton.h"

#include "cpu/cholesky.h"
#include "cpu/dcd_cpu.h"  // gram_margins

#include <algorithm>
#include <cmath>

namespace simattr {

namespace {

// A largest |projected gradient| this small (gradients are O(1): margins against 1) is the
// optimum to rounding, 10^4 below liblinear's default tolerance.
constexpr double kSettled = 1e-10;

// Deleting rows from the factor (a rotation sweep of the trailing block each, O(n^2)) stops
// paying against refactoring it once a quarter of its rows go; a refactor also sheds the
// updates' accumulated rounding. (Rows that join are always appended as one block: that
// costs n^3 / 3 flops less than a refactor. Thresholds of 1/2 to 1/32 here measured the same
// on the main job and no better on Gaussian data.)
inline bool refactor_cheaper(int64_t dropped, int64_t rows) {
    return 4 * dropped > rows;
}

// Largest |projected gradient| with no upper bound.
double max_pg(const double* alpha, const std::vector<double>& g, int64_t l, const DcdConstants& dc) {
    double m = 0.0;
    for (int64_t t = 0; t < l; ++t) {
        const double G = dc.gradient(t, g[t], alpha[t]);
        m = std::max(m, alpha[t] > 0.0 ? std::fabs(G) : std::max(0.0, -G));
    }
    return m;
}

// Starts the factor from the warm one: its rows whose slots are still wanted (in[]) stay,
// the others are deleted, and wanted slots it lacks are appended, in A's order. Returns
// false (the caller refactors) where refactoring is cheaper.
template <class Append>
bool from_warm(NewtonWarm& warm, const int64_t* slot_ids, int64_t l, const std::vector<uint8_t>& in,
               std::vector<int64_t>& A, Append&& append) {
    thread_local std::vector<std::pair<int64_t, int64_t>> by_id;  // (id, slot), sorted
    thread_local std::vector<int64_t> kept, drop;
    thread_local std::vector<uint8_t> have;
    by_id.clear();
    for (int64_t t = 0; t < l; ++t) by_id.emplace_back(slot_ids[t], t);
    std::sort(by_id.begin(), by_id.end());
    kept.clear();
    drop.clear();
    have.assign(size_t(l), 0);
    for (size_t r = 0; r < warm.ids.size(); ++r) {
        const auto it =
            std::lower_bound(by_id.begin(), by_id.end(), std::make_pair(warm.ids[r], int64_t(-1)));
        const bool found = it != by_id.end() && it->first == warm.ids[r];
        if (found && in[it->second]) {
            kept.push_back(it->second);
            have[it->second] = 1;
        } else {
            drop.push_back(int64_t(r));
        }
    }
    // Rows it lacks are appended as one block, always cheaper than refactoring; deleted rows
    // each cost a rotation of the trailing block, which stops paying when many go.
    if (kept.empty() || refactor_cheaper(int64_t(drop.size()), int64_t(A.size()))) return false;
    warm.chol.remove(drop.data(), int64_t(drop.size()));  // drop is ascending
    thread_local std::vector<int64_t> wanted, missing;
    wanted.swap(A);
    A = kept;
    missing.clear();
    for (int64_t t : wanted)
        if (!have[t]) missing.push_back(t);
    if (!append(missing)) {
        A.swap(wanted);  // the caller refactors the whole set
        return false;
    }
    return true;
}

}  // namespace

bool newton_active_set(const Blas& blas, const double* K, int64_t l, const DcdConstants& dc, double* alpha,
                       std::vector<double>& g, NewtonWarm* warm, const int64_t* slot_ids) {
    // A primal-dual active-set iteration: solve on A, drop coordinates the solve drives
    // negative, add those outside A that then violate, until A is consistent. Rows that leave
    // are deleted from the Cholesky factor (or it is refactored: refactor_cheaper), rows that
    // join are appended to it as one block.
    constexpr int64_t kMaxActive = 2048;
    // Factors kept between calls are at most this many rows (3.4 MiB with their headroom),
    // so a tile of SVMs holds a bounded amount; larger ones are rebuilt by the next call.
    constexpr int64_t kKeepMax = 512;
    constexpr int kMaxSteps = 16;
    if (slot_ids == nullptr) warm = nullptr;  // a kept factor's rows are named by slot ids
    thread_local GrowingCholesky local;
    GrowingCholesky& chol = warm != nullptr ? warm->chol : local;
    thread_local std::vector<double> M, x, block, alpha2, g2;
    thread_local std::vector<int64_t> A, drop, add;
    thread_local std::vector<uint8_t> in;
    // Already optimal to rounding (the round that only tightens the tolerance): a Newton
    // step has nothing left to improve, and its result could not be told from this one.
    const double pg0 = max_pg(alpha, g, l, dc);
    if (pg0 <= kSettled) return true;
    const auto entry = [&](int64_t s, int64_t t) { return slot_y(s) * slot_y(t) * K[s * l + t]; };
    in.assign(size_t(l), 0);
    A.clear();
    for (int64_t t = 0; t < l; ++t)
        if (alpha[t] > 0.0 || dc.gradient(t, g[t], alpha[t]) < 0.0) {
            in[t] = 1;
            A.push_back(t);
        }
    const auto refactor = [&]() {
        const int64_t n = int64_t(A.size());
        M.resize(size_t(n * n));
        for (int64_t a = 0; a < n; ++a)  // the upper triangle, which factor() reads
            for (int64_t b = a; b < n; ++b) M[a * n + b] = entry(A[a], A[b]) + (a == b ? dc.diag(A[a]) : 0.0);
        if (warm != nullptr) ++warm->refactors;
        return chol.factor(blas, M.data(), n);
    };
    // Appends slots ts to the factor and to A, as one block; false (A and the factor as they
    // were) when the extension is not SPD.
    const auto append = [&](const std::vector<int64_t>& ts) {
        const int64_t n = int64_t(A.size()), k = int64_t(ts.size());
        block.resize(size_t(k * (n + k)));  // Mon [k, n], then Mnn [k, k]
        double* Mnn = block.data() + k * n;
        for (int64_t a = 0; a < k; ++a) {
            for (int64_t b = 0; b < n; ++b) block[size_t(a * n + b)] = entry(ts[a], A[b]);
            for (int64_t b = a; b < k; ++b)
                Mnn[a * k + b] = entry(ts[a], ts[b]) + (a == b ? dc.diag(ts[a]) : 0.0);
        }
        if (!chol.append_block(blas, block.data(), Mnn, k)) return false;
        A.insert(A.end(), ts.begin(), ts.end());
        return true;
    };
    const bool ok =
        int64_t(A.size()) <= kMaxActive && !A.empty() &&
        ((warm != nullptr && !warm->ids.empty() && from_warm(*warm, slot_ids, l, in, A, append)) ||
         refactor());
    // From here on chol always factors A's matrix, so the caller may keep it; a failed
    // factorisation leaves nothing to keep.
    struct Keep {
        NewtonWarm* warm;
        const std::vector<int64_t>& A;
        const int64_t* ids;
        bool valid;
        ~Keep() {
            if (warm == nullptr) return;
            warm->ids.clear();
            if (!valid || int64_t(A.size()) > kKeepMax) {
                warm->chol = GrowingCholesky();  // nothing to keep: free it now
                return;
            }
            for (int64_t t : A) warm->ids.push_back(ids[t]);
        }
    } keep{warm, A, slot_ids, ok};
    if (!ok) return false;
    alpha2.resize(size_t(l));
    g2.resize(size_t(l));
    for (int step = 0; step < kMaxSteps; ++step) {
        const int64_t n = int64_t(A.size());
        x.assign(size_t(n), 1.0);
        chol.solve(x.data());
        // Coordinates the solve drives negative leave the active set (their alpha is 0).
        drop.clear();
        for (int64_t a = 0; a < n; ++a)
            if (x[a] < 0.0) drop.push_back(a);
        if (!drop.empty()) {
            for (int64_t a : drop) in[A[a]] = 0;
            for (auto it = drop.rbegin(); it != drop.rend(); ++it) A.erase(A.begin() + *it);
            if (A.empty()) return false;
            if (refactor_cheaper(int64_t(drop.size()), n)) {
                if (!(keep.valid = refactor())) return false;
            } else {
                chol.remove(drop.data(), int64_t(drop.size()));  // drop is ascending
            }
            continue;
        }
        std::fill(alpha2.begin(), alpha2.end(), 0.0);
        for (int64_t a = 0; a < n; ++a) alpha2[A[a]] = x[a];
        gram_margins(K, l, alpha2.data(), g2.data());
        // Coordinates outside A that now violate (G < 0) join it; if none does, done.
        add.clear();
        for (int64_t t = 0; t < l; ++t)
            if (!in[t] && dc.gradient(t, g2[t], alpha2[t]) < 0.0) add.push_back(t);
        if (!add.empty()) {
            if (n + int64_t(add.size()) > kMaxActive) return false;
            for (int64_t t : add) in[t] = 1;
            if (!append(add)) return false;  // the factor still matches A
            continue;
        }
        if (max_pg(alpha2.data(), g2, l, dc) >= pg0) return false;
        std::copy(alpha2.begin(), alpha2.end(), alpha);
        std::copy(g2.begin(), g2.end(), g.begin());
        return true;
    }
    return false;
}

}  // namespace simattr
