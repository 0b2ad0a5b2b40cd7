#include <cuda_fp16.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <stdexcept>
#include <vector>

#include "common/dcd_math.h"
#include "cuda/device_util.cuh"
#include "cuda/esvm_cuda.h"

namespace simattr::cuda {

namespace {

// Warp dot product of w (shared, d + 1 doubles) with the augmented row [x, B]; the sum is
// reduced to lane 0 and broadcast, so every lane takes the same decisions.
__device__ double warp_dot(const double* w, const void* x, DType t, int64_t row, int64_t d, double B) {
    const int lane = threadIdx.x & 31;
    double s = 0.0;
    for (int64_t c = lane; c < d; c += 32) s += w[c] * double(load(x, t, row * d + c));
    return warp_sum(s) + w[d] * B;
}

__device__ void warp_axpy(double* w, double a, const void* x, DType t, int64_t row, int64_t d, double B) {
    const int lane = threadIdx.x & 31;
    for (int64_t c = lane; c < d; c += 32) w[c] += a * double(load(x, t, row * d + c));
    if (lane == 0) w[d] += a * B;
    __syncwarp();
}

struct SolveArgs {
    const void* q;
    DType qt;
    const int64_t* qrows;
    int64_t m;
    const void* x;
    DType xt;
    const int64_t* krows;
    int64_t n, d;
    const uint64_t* seeds;  // [m]
    const double* qd_neg;   // [n]
    DcdConstants dc;
    double B, tol;
    int64_t max_iter;
    double* alpha;   // [m, n + 1]: slot 0 the positive, slot 1 + i key row i
    int* index;      // [m, n + 1]
    float* f;        // [m, n] decision values out
    int64_t* iters;  // [m]
    int* converged;  // [m]
};

// One warp per query. Lane 0 owns the permutation; every lane holds the same scalars.
__global__ void solve(SolveArgs a) {
    extern __shared__ double smem[];
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    const int64_t j = int64_t(blockIdx.x) * (blockDim.x / 32) + warp;
    if (j >= a.m) return;
    double* w = smem + warp * (a.d + 1);
    for (int64_t c = lane; c <= a.d; c += 32) w[c] = 0.0;
    const int64_t l = a.n + 1;
    double* alpha = a.alpha + j * l;
    int* index = a.index + j * l;
    for (int64_t t = lane; t < l; t += 32) {
        alpha[t] = 0.0;
        index[t] = int(t);
    }
    __syncwarp();
    const int64_t qrow = a.qrows[j];
    const double qd_pos = warp_sq_norm(a.q, a.qt, qrow, a.d) + a.B * a.B + a.dc.diag_pos;

    SplitMix64 rng(a.seeds[j]);
    int64_t active = l, iter = 0;
    double pg_max_old = 1e300, pg_min_old = -1e300;
    int done = 0;
    while (iter < a.max_iter) {
        if (lane == 0)
            for (int64_t t = 0; t < active; ++t) {
                const int64_t u = t + rng.below(active - t);
                const int tmp = index[t];
                index[t] = index[u];
                index[u] = tmp;
            }
        __syncwarp();
        double pg_max_new = -1e300, pg_min_new = 1e300;
        for (int64_t t = 0; t < active; ++t) {
            const int slot = index[t];
            const bool pos = slot == 0;
            const void* src = pos ? a.q : a.x;
            const DType st = pos ? a.qt : a.xt;
            const int64_t row = pos ? qrow : a.krows[slot - 1];
            const double upper = a.dc.upper(slot);
            const double al = alpha[slot];
            const double G = a.dc.gradient(slot, warp_dot(w, src, st, row, a.d, a.B), al);
            double pg;
            if (dcd_visit(G, al, upper, pg_max_old, pg_min_old, &pg) == DcdAction::Shrink) {
                --active;
                if (lane == 0) {
                    index[t] = index[active];
                    index[active] = slot;
                }
                __syncwarp();
                --t;
                continue;
            }
            pg_max_new = fmax(pg_max_new, pg);
            pg_min_new = fmin(pg_min_new, pg);
            if (fabs(pg) > 1e-12) {
                const double na = dcd_step(al, G, pos ? qd_pos : a.qd_neg[slot - 1], upper);
                __syncwarp();
                if (lane == 0) alpha[slot] = na;
                warp_axpy(w, (na - al) * slot_y(slot), src, st, row, a.d, a.B);
            }
        }
        ++iter;
        if (pg_max_new - pg_min_new <= a.tol) {
            if (active == l) {
                done = 1;
                break;
            }
            active = l;
            pg_max_old = 1e300;
            pg_min_old = -1e300;
            continue;
        }
        dcd_next_thresholds(pg_max_new, pg_min_new, &pg_max_old, &pg_min_old);
    }
    for (int64_t i = 0; i < a.n; ++i) {
        const double v = warp_dot(w, a.x, a.xt, a.krows[i], a.d, a.B);
        if (lane == 0) a.f[j * a.n + i] = finite_or_worst(float(v));
    }
    if (lane == 0) {
        a.iters[j] = iter;
        a.converged[j] = done;
    }
}

__global__ void key_qd(const void* x, DType t, const int64_t* rows, int64_t n, int64_t d, double add,
                       double* out) {
    const int64_t i = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x & 31;
    if (i >= n) return;
    const double s = warp_sq_norm(x, t, rows[i], d);
    if (lane == 0) out[i] = s + add;
}

// The solver's dynamic shared memory limit is raised to the device's opt-in maximum once per
// device and process (cudaFuncSetAttribute is not safe to race from several threads).
void allow_max_shared_memory(int device, int smem_max) {
    static std::mutex lock;
    static std::set<int> done;
    std::lock_guard<std::mutex> guard(lock);
    if (done.count(device)) return;
    check(cudaFuncSetAttribute(solve, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_max),
          "cudaFuncSetAttribute");
    done.insert(device);
}

}  // namespace

void esvm_topk(const void* queries, DType qtype, const int64_t* query_rows, int64_t m, const void* keys,
               DType ktype, const int64_t* key_rows, int64_t n, int64_t d, const int64_t* query_ids,
               const EsvmParams& p, TopkAccumulatorCuda& acc, int64_t row0, int64_t* n_iter,
               uint8_t* converged) {
    if (m == 0 || n == 0) return;
    if (n > acc.max_cols())
        throw std::invalid_argument("esvm_topk (cuda): keys larger than the accumulator's max_cols");
    if (n >= (int64_t(1) << 31)) throw std::invalid_argument("esvm_topk (cuda): keys must have < 2^31 rows");
    int dev = 0, smem_max = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    check(cudaDeviceGetAttribute(&smem_max, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev),
          "cudaDeviceGetAttribute");
    const size_t per_warp = sizeof(double) * size_t(d + 1);
    if (per_warp > size_t(smem_max))
        throw std::invalid_argument("esvm_topk (cuda): d too large for one warp's weights in shared memory");
    const int warps = int(std::max<size_t>(1, std::min<size_t>(4, size_t(smem_max) / per_warp)));
    const size_t smem = per_warp * warps;
    allow_max_shared_memory(dev, smem_max);
    cudaStream_t st = static_cast<cudaStream_t>(acc.stream());

    const DcdConstants dc = dcd_constants(p.C, n, p.squared_hinge);
    std::vector<uint64_t> seeds(m);
    for (int64_t j = 0; j < m; ++j) seeds[j] = query_seed(p.seed, query_ids[j]);
    DeviceBuffer<uint64_t> d_seeds(m);
    copy_to_device(d_seeds.get(), seeds.data(), sizeof(uint64_t) * m);
    DeviceBuffer<double> qd(n), alpha(size_t(m * (n + 1)));
    DeviceBuffer<int> index(size_t(m * (n + 1))), conv(m);
    DeviceBuffer<float> f(size_t(m * n));
    DeviceBuffer<int64_t> iters(m);
    key_qd<<<int((n + 7) / 8), 256, 0, st>>>(
        keys, ktype, key_rows, n, d, p.intercept_scaling * p.intercept_scaling + dc.diag_neg, qd.get());
    check_launch(st, "esvm keys norms");
    SolveArgs a{queries,
                qtype,
                query_rows,
                m,
                keys,
                ktype,
                key_rows,
                n,
                d,
                d_seeds.get(),
                qd.get(),
                dc,
                p.intercept_scaling,
                p.tol,
                p.max_iter,
                alpha.get(),
                index.get(),
                f.get(),
                iters.get(),
                conv.get()};
    solve<<<int((m + warps - 1) / warps), 32 * warps, smem, st>>>(a);
    check_launch(st, "esvm solve kernel");
    acc.push_scores(f.get(), row0, m, n, key_rows);
    std::vector<int> hconv(m);
    copy_to_host_async(n_iter, iters.get(), sizeof(int64_t) * m, st);
    copy_to_host_async(hconv.data(), conv.get(), sizeof(int) * m, st);
    check(cudaStreamSynchronize(st), "esvm results");
    for (int64_t j = 0; j < m; ++j) converged[j] = uint8_t(hconv[j]);
}

}  // namespace simattr::cuda
