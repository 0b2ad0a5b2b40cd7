// Newton step on the settled active set of a squared-hinge exemplar SVM (Gram form).
//
// With the squared hinge there is no upper bound, and every coordinate with alpha > 0 has
// gradient 0 at the optimum: (Y K Y + D)_AA alpha_A = 1 on the active set A. Once liblinear's
// sweeps have found A, one Cholesky solve of that |A| x |A| system lands on the optimum that
// the remaining sweeps would only approach linearly. The caller still finishes with sweeps,
// so liblinear's stopping rule is what decides convergence.
#pragma once
#include <cstdint>
#include <vector>

#include "common/dcd_math.h"
#include "cpu/blas.h"

namespace simattr {

// K [l, l] augmented Gram matrix; alpha [l] (slot 0 the positive, y = +1; others y = -1);
// g [l] = K (alpha * y). k holds the squared-hinge diagonal terms.
// Replaces alpha (and g) by the Newton solution when it is feasible (alpha_A >= 0) and
// reduces the largest projected gradient; otherwise leaves them unchanged. Returns whether
// the step was taken.
// blas.dpotrf / dpotrs factor the system when given (a blocked LAPACK Cholesky).
bool newton_active_set(const Blas& blas, const double* K, int64_t l, const DcdConstants& dc, double* alpha,
                       std::vector<double>& g);

}  // namespace simattr
