// Exemplar SVMs in Gram form on the GPU (common/dcd_gram_lanes.h, one warp per query): for
// classes whose pool is small against d (ImageNet: 1,281 keys, d = 2,048). A class's keys'
// Gram matrix is computed once and shared by all its queries (it stays in L2 while they
// sweep), and a coordinate visit reads one margin instead of a d-dimensional row.
#include <algorithm>

#include "common/dcd_gram_lanes.h"
#include "cuda/device_util.cuh"
#include "cuda/esvm_cuda.h"
#include "cuda/esvm_solve.cuh"

namespace simattr::cuda {

namespace {

constexpr int kDotTile = 16;

// out[i * ldo + j] = A[arows[i]] . B[brows[j]] + add for i < na, j < nb, accumulated in
// double over 16 x 16 output tiles, the rows' entries staged through shared memory 16 at a
// time. A, B: [*, d] row-major float32 or float16. Row tiles stride over gridDim.y (<= 65,535).
__global__ void row_dots(const void* A, DType at, const int64_t* arows, int64_t na, const void* B, DType bt,
                         const int64_t* brows, int64_t nb, int64_t d, double add, double* out, int64_t ldo) {
    __shared__ double as[kDotTile][kDotTile + 1], bs[kDotTile][kDotTile + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t j = int64_t(blockIdx.x) * kDotTile + tx;
    const int64_t jb = int64_t(blockIdx.x) * kDotTile + ty;  // the B row this thread stages
    for (int64_t i0 = int64_t(blockIdx.y) * kDotTile; i0 < na; i0 += int64_t(gridDim.y) * kDotTile) {
        const int64_t i = i0 + ty;
        double s = 0.0;
        for (int64_t c0 = 0; c0 < d; c0 += kDotTile) {
            const int64_t c = c0 + tx;
            as[ty][tx] = (i < na && c < d) ? double(load(A, at, arows[i] * d + c)) : 0.0;
            bs[ty][tx] = (jb < nb && c < d) ? double(load(B, bt, brows[jb] * d + c)) : 0.0;
            __syncthreads();
            for (int t = 0; t < kDotTile; ++t) s += as[ty][t] * bs[tx][t];
            __syncthreads();
        }
        if (i < na && j < nb) out[i * ldo + j] = s + add;
    }
}

void launch_row_dots(const void* A, DType at, const int64_t* arows, int64_t na, const void* B, DType bt,
                     const int64_t* brows, int64_t nb, int64_t d, double add, double* out, int64_t ldo,
                     cudaStream_t st) {
    if (na == 0 || nb == 0) return;
    const dim3 block(kDotTile, kDotTile);
    const dim3 grid(unsigned((nb + kDotTile - 1) / kDotTile),
                    unsigned(std::min<int64_t>((na + kDotTile - 1) / kDotTile, 65535)));
    row_dots<<<grid, block, 0, st>>>(A, at, arows, na, B, bt, brows, nb, d, add, out, ldo);
    check_launch(st, "esvm gram dots");
}

// One warp per query of a Gram-form class; its margins g [n + 1] live in shared memory
// (`slots` doubles per warp). Warps of primal-form classes return at once.
__global__ void solve_gram(SolveArgs a, int64_t slots) {
    extern __shared__ double smem[];
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    const int64_t j = int64_t(blockIdx.x) * (blockDim.x / 32) + warp;
    if (j >= a.m) return;
    const int c = a.qclass[j];
    if (!a.gram[c]) return;
    const int64_t n = a.koff[c + 1] - a.koff[c];
    GramProblem P;
    P.n = n;
    P.kqq = warp_sq_norm(a.q, a.qt, a.qrows[j], a.d) + a.B * a.B;
    P.kq = a.kq + a.foff[j];
    P.kx = a.kx + a.kx_off[c];
    P.dc = dcd_constants(a.C, n, a.squared_hinge);
    P.tol = a.tol;
    P.max_iter = a.max_iter;
    GramState S{a.alpha + a.foff[j] + j, a.index + a.foff[j] + j, smem + warp * slots};
    int64_t iters = 0;
    const bool done = dcd_gram_lanes(WarpLanes{lane}, P, S, a.seeds[j], &iters);
    float* f = a.f + a.foff[j];
    for (int64_t i = lane; i < n; i += 32) f[i] = finite_or_worst(float(S.g[1 + i]));
    if (lane == 0) {
        a.iters[j] = iters;
        a.converged[j] = done ? 1 : 0;
    }
}

}  // namespace

void launch_gram(SolveArgs& a, const int32_t* host_query_class, const int64_t* host_key_offsets,
                 const int64_t* host_foff, int64_t total, int64_t n_classes, EsvmForm form, int smem_max,
                 int device, void* stream, GramBuffers& keep) {
    cudaStream_t st = static_cast<cudaStream_t>(stream);
    const GramPlan plan = plan_gram(a.m, host_query_class, host_key_offsets, n_classes, a.d, form);
    const int64_t slots = plan.slots;
    if (slots == 0) return;  // every class in primal form
    keep.gram.reset(size_t(n_classes));
    keep.kx_off.reset(size_t(n_classes));
    keep.kx.reset(size_t(std::max<int64_t>(1, plan.kx_total)));
    keep.kq.reset(size_t(std::max<int64_t>(1, total)));
    copy_to_device(keep.gram.get(), plan.gram.data(), plan.gram.size());
    copy_to_device(keep.kx_off.get(), plan.kx_off.data(), sizeof(int64_t) * plan.kx_off.size());
    a.gram = keep.gram.get();
    a.kx = keep.kx.get();
    a.kx_off = keep.kx_off.get();
    a.kq = keep.kq.get();
    const double b2 = a.B * a.B;
    for (int64_t j0 = 0; j0 < a.m;) {  // per run of queries of one class
        int64_t j1 = j0;
        while (j1 < a.m && host_query_class[j1] == host_query_class[j0]) ++j1;
        const int32_t c = host_query_class[j0];
        if (plan.gram[c]) {
            const int64_t n = host_key_offsets[c + 1] - host_key_offsets[c];
            const int64_t* kr = a.krows + host_key_offsets[c];
            // The class's Gram matrix (queries are grouped by class: one run per class).
            launch_row_dots(a.x, a.xt, kr, n, a.x, a.xt, kr, n, a.d, b2, keep.kx.get() + plan.kx_off[c], n,
                            st);
            // Query j0 + r's dots with the keys: row r of a [j1 - j0, n] block at foff[j0].
            launch_row_dots(a.q, a.qt, a.qrows + j0, j1 - j0, a.x, a.xt, kr, n, a.d, b2,
                            keep.kq.get() + host_foff[j0], n, st);
        }
        j0 = j1;
    }
    const size_t per_warp = sizeof(double) * size_t(slots);
    const int warps = int(std::max<size_t>(1, std::min<size_t>(4, size_t(smem_max) / per_warp)));
    allow_max_shared_memory(reinterpret_cast<const void*>(solve_gram), device, smem_max);
    solve_gram<<<int((a.m + warps - 1) / warps), 32 * warps, per_warp * warps, st>>>(a, slots);
    check_launch(st, "esvm gram solve kernel");
}

}  // namespace simattr::cuda
