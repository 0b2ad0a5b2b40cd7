// liblinear's dual coordinate descent for one exemplar SVM in Gram form, written once for a
// group of cooperating lanes: a CUDA warp (32 lanes, one per thread) or one host thread that
// plays all 32 lanes in turn. The GPU solver runs it per warp; the host instantiation lets
// the same code be tested without a GPU (tests/cpp/test_dcd_gram_lanes.cpp), on the same
// permutation stream.
//
// Gram form: the solver keeps the margins g = K (alpha * y) [l] instead of the weights, so a
// coordinate visit reads one number (O(1), against O(d) for w . x) and an update adds one
// row of K (O(l)). It pays when l is below about 2d and every visit would otherwise re-read
// a d-dimensional row (the CPU solver's rule; ImageNet: l = 1,282, d = 2,048).
#pragma once
#include <cstdint>

#include "common/dcd_math.h"

namespace simattr {

// The lanes of a CUDA warp: each thread is one lane; `sync` is a warp barrier.
struct WarpLanes {
    static constexpr int kOwnRngs = 1;  // each thread holds its own lane's generator
    int lane;
    SIMATTR_HD int64_t first() const { return lane; }
    SIMATTR_HD int64_t step() const { return 32; }
    SIMATTR_HD bool leader() const { return lane == 0; }
    SIMATTR_HD int own_lane(int r) const { return lane + r; }
    SIMATTR_HD void sync() const {
#ifdef __CUDA_ARCH__
        __syncwarp();
#endif
    }
};

// One host thread playing all 32 lanes: loops over every index, and holds every lane's
// generator so the coordinate order is the one a warp would draw.
struct HostLanes {
    static constexpr int kOwnRngs = 32;
    SIMATTR_HD int64_t first() const { return 0; }
    SIMATTR_HD int64_t step() const { return 1; }
    SIMATTR_HD bool leader() const { return true; }
    SIMATTR_HD int own_lane(int r) const { return r; }
    SIMATTR_HD void sync() const {}
};

// One exemplar SVM in Gram form. Slots: 0 the query (y = +1), 1 + i key i (y = -1); every row
// is augmented with the constant B, so entries below include B^2 and no diagonal term.
struct GramProblem {
    int64_t n;         // keys; l = n + 1 slots
    double kqq;        // q . q + B^2
    const double* kq;  // [n] q . x_i + B^2
    const double* kx;  // [n, n] x_i . x_j + B^2, row-major
    DcdConstants dc;
    double tol;
    int64_t max_iter;

    SIMATTR_HD double entry(int64_t s, int64_t t) const {
        if (s == 0) return t == 0 ? kqq : kq[t - 1];
        return t == 0 ? kq[s - 1] : kx[(s - 1) * n + (t - 1)];
    }
};

// Per-SVM state, [l] each: the dual variables, the coordinate order (first `active` entries
// unshrunk) and the margins g = K (alpha * y) (decision values: g[1 + i] = w . [x_i, B]).
struct GramState {
    double* alpha;
    int* index;
    double* g;
};

// One sweep's coordinate order: the active slots are cut into 32 runs (the cut points move by
// a random offset every sweep, so slots migrate between runs) and each lane Fisher-Yates
// shuffles its own run with its own generator. liblinear's DCD needs a varying order, not a
// uniform permutation; one lane shuffling alone would be a serial O(active) step per sweep.
// `shared` is identical in every lane (same seed, same draws); own[r] is lane own_lane(r)'s.
template <class Lanes>
SIMATTR_HD void shuffle_runs(const Lanes& L, int* index, int64_t active, SplitMix64& shared,
                             SplitMix64* own) {
    const int64_t len = (active + 31) / 32;
    const int64_t offset = len > 1 ? shared.below(len) : 0;
    for (int r = 0; r < Lanes::kOwnRngs; ++r) {
        const int lane = L.own_lane(r);
        const int64_t start = offset + lane * len, stop = offset + (lane + 1) * len;
        const int64_t lo = lane == 0 ? 0 : (start < active ? start : active);
        const int64_t hi = lane == 31 ? active : (stop < active ? stop : active);
        for (int64_t t = lo; t + 1 < hi; ++t) {
            const int64_t u = t + own[r].below(hi - t);
            const int tmp = index[t];
            index[t] = index[u];
            index[u] = tmp;
        }
    }
    L.sync();
}

// The generators of the lanes a caller plays, seeded as the CUDA solvers seed them.
template <class Lanes>
SIMATTR_HD void seed_lanes(const Lanes& L, uint64_t seed, SplitMix64* own) {
    for (int r = 0; r < Lanes::kOwnRngs; ++r)
        own[r] = SplitMix64(seed ^ (0x9E3779B97F4A7C15ull * uint64_t(L.own_lane(r) + 1)));
}

// liblinear's sweeps with shrinking, from alpha = 0, until max PG - min PG <= tol holds on
// every slot (returns true) or *iters reaches max_iter. Every lane reads the same g[slot]
// after a barrier, so all lanes take the same decisions; the leader alone writes shared
// per-slot state, and g is updated in parallel over its entries.
template <class Lanes>
SIMATTR_HD bool dcd_gram_lanes(const Lanes& L, const GramProblem& P, GramState& S, uint64_t seed,
                               int64_t* iters) {
    const int64_t l = P.n + 1;
    for (int64_t t = L.first(); t < l; t += L.step()) {
        S.alpha[t] = 0.0;
        S.index[t] = int(t);
        S.g[t] = 0.0;
    }
    L.sync();
    SplitMix64 shared(seed), own[Lanes::kOwnRngs];
    seed_lanes(L, seed, own);
    int64_t active = l, iter = 0;
    double pg_max_old = 1e300, pg_min_old = -1e300;
    bool done = false;
    while (iter < P.max_iter) {
        shuffle_runs(L, S.index, active, shared, own);
        double pg_max_new = -1e300, pg_min_new = 1e300;
        for (int64_t t = 0; t < active; ++t) {
            const int slot = S.index[t];
            const double upper = P.dc.upper(slot), al = S.alpha[slot];
            const double G = P.dc.gradient(slot, S.g[slot], al);
            double pg;
            if (dcd_visit(G, al, upper, pg_max_old, pg_min_old, &pg) == DcdAction::Shrink) {
                --active;
                L.sync();  // every lane has read index[t] before the leader moves it
                if (L.leader()) {
                    S.index[t] = S.index[active];
                    S.index[active] = slot;
                }
                L.sync();
                --t;
                continue;
            }
            pg_max_new = pg_max_new > pg ? pg_max_new : pg;
            pg_min_new = pg_min_new < pg ? pg_min_new : pg;
            if (pg > 1e-12 || pg < -1e-12) {
                const double na = dcd_step(al, G, P.entry(slot, slot) + P.dc.diag(slot), upper);
                const double dy = (na - al) * slot_y(slot);
                L.sync();  // every lane has read alpha[slot] and g[slot]
                if (L.leader()) S.alpha[slot] = na;
                for (int64_t u = L.first(); u < l; u += L.step()) S.g[u] += dy * P.entry(slot, u);
                L.sync();
            }
        }
        ++iter;
        if (dcd_sweep_end(pg_max_new, pg_min_new, P.tol, l, &active, &pg_max_old, &pg_min_old)) {
            done = true;
            break;
        }
    }
    *iters = iter;
    return done;
}

}  // namespace simattr
