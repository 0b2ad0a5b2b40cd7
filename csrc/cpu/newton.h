// Newton step on the settled active set of a squared-hinge exemplar SVM (Gram form).
//
// With the squared hinge there is no upper bound, and every coordinate with alpha > 0 has
// gradient 0 at the optimum: (Y K Y + D)_AA alpha_A = 1 on the active set A. Given a guess
// of A (from the warm start, or from sweeps), a few Cholesky solves of that |A| x |A| system,
// with A corrected between them, land on the optimum that sweeps would only approach
// linearly. The caller still finishes with sweeps, so liblinear's stopping rule is what
// decides convergence.
#pragma once
#include <cstdint>
#include <vector>

#include "common/dcd_math.h"
#include "cpu/blas.h"
#include "cpu/cholesky.h"

namespace simattr {

// The factor of the last active set, kept by the caller between calls on the same SVM (the
// working set changes between rounds, the rows it keeps do not): rows are named by the
// caller's stable ids, so the next call updates the factor instead of refactoring it.
struct NewtonWarm {
    GrowingCholesky chol;
    std::vector<int64_t> ids;  // the id of each factor row, in order; empty: no factor
    int64_t refactors = 0;     // factorisations from scratch so far (the rest were updates)
};

// K [l, l] augmented Gram matrix; alpha [l] (slot 0 the positive, y = +1; others y = -1);
// g [l] = K (alpha * y). dc holds the squared-hinge diagonal terms.
// Replaces alpha (and g) by the Newton solution when it is feasible (alpha_A >= 0) and
// reduces the largest projected gradient; otherwise leaves them unchanged. Returns whether
// alpha is now the working set's optimum: the step was taken, or alpha already was one to
// rounding (largest projected gradient at most 1e-10) and nothing was done.
// blas.dpotrf factors the system when given (a blocked LAPACK Cholesky).
// warm (may be null) with slot_ids [l] (distinct ids of the slots): the factor to start
// from, and where the final one is left.
bool newton_active_set(const Blas& blas, const double* K, int64_t l, const DcdConstants& dc, double* alpha,
                       std::vector<double>& g, NewtonWarm* warm = nullptr, const int64_t* slot_ids = nullptr);

}  // namespace simattr
