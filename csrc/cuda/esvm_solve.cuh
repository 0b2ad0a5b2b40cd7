// What the CUDA exemplar-SVM kernels share: the arguments of one batch's solve, and the two
// solvers' launches (primal form in esvm_cuda.cu, Gram form in esvm_gram_cuda.cu). Internal
// to the CUDA core; the public entry point is esvm_cuda.h.
#pragma once
#include <cstdint>

#include "common/views.h"
#include "cuda/cuda_util.h"
#include "cuda/esvm_cuda.h"

namespace simattr::cuda {

// Device pointers unless marked host. One warp per query j < m.
struct SolveArgs {
    const void* q;
    DType qt;
    const int64_t* qrows;   // [m] query rows, grouped by class
    const int32_t* qclass;  // [m] class index of each query (into koff)
    int64_t m;
    const void* x;
    DType xt;
    const int64_t* krows;  // [koff[n_classes]] key rows of every class, class after class
    const int64_t* koff;   // [n_classes + 1] class c's keys are krows[koff[c] .. koff[c + 1])
    const int64_t* foff;   // [m] query j's decision values start at f + foff[j] (n_c of them)
    int64_t d;
    const uint64_t* seeds;  // [m]
    const double* qd_neg;   // [koff[n_classes]] x.x + B^2 (primal form; + diag_neg per class)
    const uint8_t* gram;    // [n_classes] 1: the class is solved in Gram form (esvm_uses_gram)
    const double* kx;       // Gram form: class c's [n_c, n_c] x_i.x_j + B^2 at kx + kx_off[c]
    const int64_t* kx_off;  // [n_classes]
    const double* kq;       // Gram form: query j's [n_c] q.x_i + B^2 at kq + foff[j]
    double C;
    bool squared_hinge;
    double B, tol;
    int64_t max_iter;
    double* alpha;   // slots of query j at foff[j] + j: [n_c + 1], slot 0 the positive, 1 + i key i
    int* index;      // same layout as alpha
    float* f;        // decision values out, see foff
    int64_t* iters;  // [m]
    int* converged;  // [m]
};

// Raises a kernel's dynamic shared memory limit to the device's opt-in maximum, once per
// kernel, device and process (cudaFuncSetAttribute is not safe to race from several threads).
void allow_max_shared_memory(const void* kernel, int device, int smem_max);

// The Gram form's device state of one batch; it must outlive the launches.
struct GramBuffers {
    DeviceBuffer<uint8_t> gram;
    DeviceBuffer<int64_t> kx_off;
    DeviceBuffer<double> kx, kq;
};

// Solves, in Gram form, the queries whose class esvm_uses_gram picks: sets a.gram (left null
// when no class takes it), a.kx, a.kx_off and a.kq, fills them (one dot-product kernel per
// class for its keys' Gram matrix and its queries' dots with its keys) and launches the Gram
// solver on `stream`. host_*: host copies of the queries' classes [m], the key offsets
// [n_classes + 1] and the output offsets [m]; total: the decision values of all m queries.
void launch_gram(SolveArgs& a, const int32_t* host_query_class, const int64_t* host_key_offsets,
                 const int64_t* host_foff, int64_t total, int64_t n_classes, EsvmForm form, int smem_max,
                 int device, void* stream, GramBuffers& keep);

}  // namespace simattr::cuda
