// liblinear's dual coordinate descent for one exemplar SVM restricted to a working set of rows.
#pragma once
#include <cstdint>

#include "common/dcd_math.h"
#include "cpu/blas.h"
#include "cpu/newton.h"

namespace simattr {

// rows [l]: pointers to float32 rows of d features: row 0 is the query (the positive,
// y = +1), rows 1.. are negatives (y = -1). Every row is augmented with the constant B.
struct WorkingSet {
    const float* const* rows;
    int64_t l, d;
    double B;
    DcdConstants dc;
};

// alpha [l] (slot 0 the positive) and w [d + 1] = sum_t alpha_t y_t [x_t, B] on entry and
// exit. Sweeps until liblinear's rule max PG - min PG <= tol holds on every slot, or until
// *iters reaches max_iter (each sweep adds one). Returns true when the rule was met.
struct DcdState {
    double* alpha;
    double* w;
    SplitMix64* rng;
    int64_t* iters;
};

// Margins in Gram form: g [l] = K (alpha * y), for K [l, l] symmetric.
void gram_margins(const double* K, int64_t l, const double* alpha, double* g);

// Primal form: w is updated in place; a visit costs O(d).
bool dcd_primal(const WorkingSet& ws, DcdState& st, double tol, int64_t max_iter);

// Gram form for small working sets: K [l, l] = augmented Gram matrix (gram_aug); keeps the
// margins g = K (alpha * y) instead of w, so a visit costs O(l). w is rebuilt on exit.
// For the squared hinge, a Newton step on the settled active set (newton.h, with blas's
// LAPACK) replaces the slow tail of the sweeps; the sweeps still decide convergence.
// warm / slot_ids (may be null): the Newton step's factor kept between calls (newton.h).
bool dcd_gram(const WorkingSet& ws, const double* K, DcdState& st, double tol, int64_t max_iter,
              const Blas& blas, NewtonWarm* warm = nullptr, const int64_t* slot_ids = nullptr);

}  // namespace simattr
