// Settings of the exemplar SVMs, shared by the CPU and CUDA solvers (scikit-learn LinearSVC
// semantics: C, loss, intercept_scaling, tol, max_iter).
#pragma once
#include <cstdint>

namespace simattr {

struct EsvmParams {
    double C = 0.1;
    bool squared_hinge = true;       // false: hinge (L1) loss
    double intercept_scaling = 1.0;  // the constant feature B appended to every row
    double tol = 1e-6;               // liblinear eps: stop when max PG - min PG <= tol
    int64_t max_iter = 10000;        // sweeps over the (shrunk) coordinates, per query
    uint64_t seed = 0;               // permutation seed; combined with each query's id
    int n_threads = 0;               // <= 0: all available
};

inline EsvmParams esvm_params(double C, bool squared_hinge, double intercept_scaling, double tol,
                              int64_t max_iter, uint64_t seed, int n_threads = 0) {
    EsvmParams p;
    p.C = C;
    p.squared_hinge = squared_hinge;
    p.intercept_scaling = intercept_scaling;
    p.tol = tol;
    p.max_iter = max_iter;
    p.seed = seed;
    p.n_threads = n_threads;
    return p;
}

}  // namespace simattr
