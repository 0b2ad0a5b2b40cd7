// Dual coordinate descent maths shared by the CPU and CUDA exemplar-SVM solvers
// (liblinear's solve_l2r_l1l2_svc, Hsieh et al. ICML 2008).
//
// One exemplar SVM: the query q is the only positive (y = +1), the n key rows are the
// negatives (y = -1); every row is augmented with the constant feature B = intercept_scaling,
// so the bias is the last weight and is regularised, as in liblinear.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define SIMATTR_HD __host__ __device__
#else
#define SIMATTR_HD
#endif

namespace simattr {

// Per-class dual constants. class_weight='balanced' with one positive and n negatives gives
// C_pos = C (n+1) / 2 and C_neg = C (n+1) / (2n).
// Squared hinge: upper bound +inf and diagonal 1 / (2 C_i). Hinge: upper bound C_i, diagonal 0.
// Slots: slot 0 is the positive (the query, y = +1), every other slot a negative (y = -1).
SIMATTR_HD inline double slot_y(int64_t slot) {
    return slot == 0 ? 1.0 : -1.0;
}

struct DcdConstants {
    double diag_pos, diag_neg;
    double upper_pos, upper_neg;

    SIMATTR_HD double diag(int64_t slot) const { return slot == 0 ? diag_pos : diag_neg; }
    SIMATTR_HD double upper(int64_t slot) const { return slot == 0 ? upper_pos : upper_neg; }
    // The dual gradient G = y w.x - 1 + diag alpha, from the margin w.x (bias included).
    SIMATTR_HD double gradient(int64_t slot, double margin, double alpha) const {
        return slot_y(slot) * margin - 1.0 + diag(slot) * alpha;
    }
};

SIMATTR_HD inline DcdConstants dcd_constants(double C, int64_t n, bool squared_hinge) {
    const double c_pos = C * double(n + 1) / 2.0;
    const double c_neg = C * double(n + 1) / (2.0 * double(n));
    DcdConstants dc;
    if (squared_hinge) {
        dc.diag_pos = 0.5 / c_pos;
        dc.diag_neg = 0.5 / c_neg;
        dc.upper_pos = dc.upper_neg = 1e300;  // +inf without relying on IEEE infinity on device
    } else {
        dc.diag_pos = dc.diag_neg = 0.0;
        dc.upper_pos = c_pos;
        dc.upper_neg = c_neg;
    }
    return dc;
}

// What one coordinate visit decides, given its gradient G = y_i w.x_i - 1 + diag_i alpha_i.
enum class DcdAction : int { Shrink = 0, Update = 1 };

// liblinear's shrinking rule and projected gradient. pg_max_old / pg_min_old are the
// previous sweep's extremes; *pg receives the projected gradient of an unshrunk coordinate.
SIMATTR_HD inline DcdAction dcd_visit(double G, double alpha, double upper, double pg_max_old,
                                      double pg_min_old, double* pg) {
    *pg = 0.0;
    if (alpha == 0.0) {
        if (G > pg_max_old) return DcdAction::Shrink;
        if (G < 0.0) *pg = G;
    } else if (alpha == upper) {
        if (G < pg_min_old) return DcdAction::Shrink;
        if (G > 0.0) *pg = G;
    } else {
        *pg = G;
    }
    return DcdAction::Update;
}

// The projected Newton step on one coordinate: alpha <- clip(alpha - G / Q_ii, 0, upper).
SIMATTR_HD inline double dcd_step(double alpha, double G, double qd, double upper) {
    double a = alpha - G / qd;
    a = a < 0.0 ? 0.0 : a;
    return a > upper ? upper : a;
}

// liblinear's sweep-end bookkeeping: after a sweep that did not meet the tolerance, the
// shrinking thresholds become that sweep's extremes (or +-inf when they have the wrong sign).
SIMATTR_HD inline void dcd_next_thresholds(double pg_max_new, double pg_min_new, double* pg_max_old,
                                           double* pg_min_old) {
    *pg_max_old = pg_max_new <= 0.0 ? 1e300 : pg_max_new;
    *pg_min_old = pg_min_new >= 0.0 ? -1e300 : pg_min_new;
}

// liblinear's sweep-end rule, shared by every solver. A sweep that met max PG - min PG <= tol
// over every slot (*active == l) ends the solve: returns true. Met on the shrunk set only,
// every slot is un-shrunk to be verified; not met, the thresholds move (dcd_next_thresholds).
SIMATTR_HD inline bool dcd_sweep_end(double pg_max_new, double pg_min_new, double tol, int64_t l,
                                     int64_t* active, double* pg_max_old, double* pg_min_old) {
    if (pg_max_new - pg_min_new <= tol) {
        if (*active == l) return true;
        *active = l;
        *pg_max_old = 1e300;
        *pg_min_old = -1e300;
        return false;
    }
    dcd_next_thresholds(pg_max_new, pg_min_new, pg_max_old, pg_min_old);
    return false;
}

// SplitMix64: a tiny, high-quality PRNG with the same output on host and device, so the
// coordinate permutations depend only on (seed, query index).
struct SplitMix64 {
    uint64_t state;
    SIMATTR_HD SplitMix64() : state(0) {}
    SIMATTR_HD explicit SplitMix64(uint64_t seed) : state(seed) {}
    SIMATTR_HD uint64_t next() {
        uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    // Integer in [0, bound) for permutations: the high word of a 64 x 64-bit product
    // (Lemire's method; a modulo is a slow division, paid once per coordinate per sweep).
    SIMATTR_HD int64_t below(int64_t bound) {
#ifdef __CUDA_ARCH__
        return int64_t(__umul64hi(next(), uint64_t(bound)));
#else
        return int64_t((static_cast<unsigned __int128>(next()) * uint64_t(bound)) >> 64);
#endif
    }
};

SIMATTR_HD inline uint64_t query_seed(uint64_t seed, int64_t query_id) {
    SplitMix64 g(seed ^ (0xD1B54A32D192ED03ull * uint64_t(query_id + 1)));
    return g.next();
}

}  // namespace simattr
