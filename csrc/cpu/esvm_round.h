// One exemplar SVM's rounds on the CPU: its working set solved (in Gram form, ending with a
// Newton step, or by primal sweeps), then checked against the whole pool, pruned and grown by
// the worst violators. Internal to esvm_cpu.cpp, which runs them for tiles of queries.
#pragma once
#include <cstdint>
#include <vector>

#include "common/dcd_math.h"
#include "common/esvm_params.h"
#include "cpu/blas.h"
#include "cpu/buffer_pool.h"
#include "cpu/esvm_working_set.h"

namespace simattr {
namespace esvm_detail {

// One call's pool and settings, shared by all its SVMs.
struct Problem {
    const float* keys;
    const double* sq_norms;  // [n]: |x_i|^2
    const float* panels;     // the keys packed once for the decision values (cpu/scores.h)
    int64_t ldk, n, d;
    double B;
    DcdConstants dc;
    const EsvmParams* p;
    const Blas* blas;
    BufferPool* pool;  // the SVMs' Gram matrices and Newton factors
};

// The largest working set an SVM solves in Gram form: the query and n keys at most.
int64_t gram_rows_max(int64_t d, int64_t n, bool squared);

// The largest augmented key norm |[x, B]|: it scales the float32 GEMM error bound.
double max_augmented_norm(const Problem& P);

// Sets s up for `query` (its permutations seeded by `seed`) with the working set `rows` (key
// rows) and solves that once.
void start_svm(const Problem& P, const float* query, uint64_t seed, const std::vector<int64_t>& rows, Svm& s);

// One round of a live SVM, given its decision values f [n] over all keys (bias added here):
// it is done (finish) when no key outside the working set violates the margin at the final
// tolerance; else the violators join the working set and it is solved again.
void refresh_svm(const Problem& P, const float* query, Svm& s, float* f, double max_norm);

// A finished SVM keeps only w, its working set and its counters: its Gram matrix and Newton
// factor (up to tens of MiB each) go at once rather than when the whole tile is done.
void finish(Svm& s);

}  // namespace esvm_detail
}  // namespace simattr
