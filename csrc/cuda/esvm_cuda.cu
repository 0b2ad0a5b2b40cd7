#include <cuda_fp16.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

#include "common/dcd_gram_lanes.h"
#include "common/dcd_math.h"
#include "cuda/device_util.cuh"
#include "cuda/esvm_cuda.h"
#include "cuda/esvm_solve.cuh"

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

// Primal form: one warp per query, every class of the batch in one launch (warps of
// Gram-form classes return at once). Every lane holds the same scalars and takes the same
// decisions; lane 0 alone writes the shared per-slot state.
__global__ void solve(SolveArgs a) {
    extern __shared__ double smem[];
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    const int64_t j = int64_t(blockIdx.x) * (blockDim.x / 32) + warp;
    if (j >= a.m) return;
    const int c = a.qclass[j];
    if (a.gram != nullptr && a.gram[c]) return;
    const int64_t k0 = a.koff[c], n = a.koff[c + 1] - k0;
    const int64_t* krows = a.krows + k0;
    const double* qd_neg = a.qd_neg + k0;
    const DcdConstants dc = dcd_constants(a.C, n, a.squared_hinge);
    double* w = smem + warp * (a.d + 1);
    for (int64_t t = lane; t <= a.d; t += 32) w[t] = 0.0;
    const int64_t l = n + 1;
    double* alpha = a.alpha + a.foff[j] + j;
    int* index = a.index + a.foff[j] + j;
    for (int64_t t = lane; t < l; t += 32) {
        alpha[t] = 0.0;
        index[t] = int(t);
    }
    __syncwarp();
    const int64_t qrow = a.qrows[j];
    const double qd_pos = warp_sq_norm(a.q, a.qt, qrow, a.d) + a.B * a.B + dc.diag_pos;

    const WarpLanes L{lane};
    SplitMix64 shared(a.seeds[j]), own[1];
    seed_lanes(L, a.seeds[j], own);
    int64_t active = l, iter = 0;
    double pg_max_old = 1e300, pg_min_old = -1e300;
    int done = 0;
    while (iter < a.max_iter) {
        shuffle_runs(L, index, active, shared, own);
        double pg_max_new = -1e300, pg_min_new = 1e300;
        for (int64_t t = 0; t < active; ++t) {
            const int slot = index[t];
            const bool pos = slot == 0;
            const void* src = pos ? a.q : a.x;
            const DType st = pos ? a.qt : a.xt;
            const int64_t row = pos ? qrow : krows[slot - 1];
            const double upper = dc.upper(slot);
            const double al = alpha[slot];
            const double G = dc.gradient(slot, warp_dot(w, src, st, row, a.d, a.B), al);
            double pg;
            if (dcd_visit(G, al, upper, pg_max_old, pg_min_old, &pg) == DcdAction::Shrink) {
                --active;
                __syncwarp();  // every lane has read index[t] before lane 0 moves it
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
                const double na = dcd_step(al, G, pos ? qd_pos : qd_neg[slot - 1] + dc.diag_neg, upper);
                __syncwarp();
                if (lane == 0) alpha[slot] = na;
                warp_axpy(w, (na - al) * slot_y(slot), src, st, row, a.d, a.B);
            }
        }
        ++iter;
        if (dcd_sweep_end(pg_max_new, pg_min_new, a.tol, l, &active, &pg_max_old, &pg_min_old)) {
            done = 1;
            break;
        }
    }
    float* f = a.f + a.foff[j];
    for (int64_t i = 0; i < n; ++i) {
        const double v = warp_dot(w, a.x, a.xt, krows[i], a.d, a.B);
        if (lane == 0) f[i] = finite_or_worst(float(v));
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

}  // namespace

void allow_max_shared_memory(const void* kernel, int device, int smem_max) {
    static std::mutex lock;
    static std::set<std::pair<const void*, int>> done;
    std::lock_guard<std::mutex> guard(lock);
    if (done.count({kernel, device})) return;
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_max),
          "cudaFuncSetAttribute");
    done.insert({kernel, device});
}

void esvm_topk(const void* queries, DType qtype, const int64_t* query_rows, const int32_t* query_class,
               const int32_t* host_query_class, int64_t m, const void* keys, DType ktype,
               const int64_t* key_rows, const int64_t* host_key_offsets, int64_t n_classes, int64_t d,
               const int64_t* query_ids, const EsvmParams& p, EsvmForm form, TopkAccumulatorCuda& acc,
               int64_t* n_iter, uint8_t* converged) {
    if (m == 0) return;
    if (acc.rows() < m)
        throw std::invalid_argument("esvm_topk (cuda): accumulator has fewer rows than queries");
    // Host bookkeeping: each query's output offset, and the runs of queries of one class.
    std::vector<int64_t> foff(m);
    int64_t total = 0;
    bool primal = false;  // some query's class is solved in primal form
    for (int64_t j = 0; j < m; ++j) {
        const int32_t c = host_query_class[j];
        if (c < 0 || c >= n_classes)
            throw std::invalid_argument("esvm_topk (cuda): query class out of range");
        if (j > 0 && c < host_query_class[j - 1])
            throw std::invalid_argument("esvm_topk (cuda): queries must be grouped by class, in class order");
        const int64_t n = host_key_offsets[c + 1] - host_key_offsets[c];
        if (n <= 0) throw std::invalid_argument("esvm_topk (cuda): a query's class has no keys");
        if (n > acc.max_cols())
            throw std::invalid_argument(
                "esvm_topk (cuda): a class has more keys than the accumulator's max_cols");
        if (n >= (int64_t(1) << 31))
            throw std::invalid_argument("esvm_topk (cuda): keys must have < 2^31 rows");
        if (form == EsvmForm::Gram && !esvm_uses_gram(n, d, form))
            throw std::invalid_argument(
                "esvm_topk (cuda): SIMATTR_CUDA_ESVM=gram needs classes of fewer than 8,192 keys");
        primal = primal || !esvm_uses_gram(n, d, form);
        foff[j] = total;
        total += n;
    }
    const int64_t n_keys = host_key_offsets[n_classes];
    int dev = 0, smem_max = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    check(cudaDeviceGetAttribute(&smem_max, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev),
          "cudaDeviceGetAttribute");
    const size_t per_warp = sizeof(double) * size_t(d + 1);
    if (primal && per_warp > size_t(smem_max))
        throw std::invalid_argument(
            "esvm_topk (cuda): d too large for one warp's weights in shared memory (primal form: classes "
            "with at least 2d keys)");
    const int warps = int(std::max<size_t>(1, std::min<size_t>(4, size_t(smem_max) / per_warp)));
    const size_t smem = per_warp * warps;
    cudaStream_t st = static_cast<cudaStream_t>(acc.stream());

    std::vector<uint64_t> seeds(m);
    for (int64_t j = 0; j < m; ++j) seeds[j] = query_seed(p.seed, query_ids[j]);
    DeviceBuffer<uint64_t> d_seeds(m);
    DeviceBuffer<int64_t> d_foff(m), d_koff(n_classes + 1), iters(m);
    copy_to_device(d_seeds.get(), seeds.data(), sizeof(uint64_t) * m);
    copy_to_device(d_foff.get(), foff.data(), sizeof(int64_t) * m);
    copy_to_device(d_koff.get(), host_key_offsets, sizeof(int64_t) * (n_classes + 1));
    DeviceBuffer<double> qd(std::max<int64_t>(1, n_keys)), alpha(size_t(total + m));
    DeviceBuffer<int> index(size_t(total + m)), conv(m);
    DeviceBuffer<float> f(static_cast<size_t>(total));
    if (n_keys > 0) {
        key_qd<<<int((n_keys + 7) / 8), 256, 0, st>>>(keys, ktype, key_rows, n_keys, d,
                                                      p.intercept_scaling * p.intercept_scaling, qd.get());
        check_launch(st, "esvm keys norms");
    }
    SolveArgs a{};
    a.q = queries;
    a.qt = qtype;
    a.qrows = query_rows;
    a.qclass = query_class;
    a.m = m;
    a.x = keys;
    a.xt = ktype;
    a.krows = key_rows;
    a.koff = d_koff.get();
    a.foff = d_foff.get();
    a.d = d;
    a.seeds = d_seeds.get();
    a.qd_neg = qd.get();
    a.C = p.C;
    a.squared_hinge = p.squared_hinge;
    a.B = p.intercept_scaling;
    a.tol = p.tol;
    a.max_iter = p.max_iter;
    a.alpha = alpha.get();
    a.index = index.get();
    a.f = f.get();
    a.iters = iters.get();
    a.converged = conv.get();
    GramBuffers gram;
    launch_gram(a, host_query_class, host_key_offsets, foff.data(), total, n_classes, form, smem_max, dev, st,
                gram);
    if (primal) {
        allow_max_shared_memory(reinterpret_cast<const void*>(solve), dev, smem_max);
        solve<<<int((m + warps - 1) / warps), 32 * warps, smem, st>>>(a);
        check_launch(st, "esvm solve kernel");
    }
    // Queries of one class are a contiguous [m_c, n_c] block of f: one push per class run.
    for (int64_t j0 = 0; j0 < m;) {
        int64_t j1 = j0;
        while (j1 < m && host_query_class[j1] == host_query_class[j0]) ++j1;
        const int32_t c = host_query_class[j0];
        const int64_t n = host_key_offsets[c + 1] - host_key_offsets[c];
        acc.push_scores(f.get() + foff[j0], j0, j1 - j0, n, key_rows + host_key_offsets[c]);
        j0 = j1;
    }
    std::vector<int> hconv(m);
    copy_to_host_async(n_iter, iters.get(), sizeof(int64_t) * m, st);
    copy_to_host_async(hconv.data(), conv.get(), sizeof(int) * m, st);
    check(cudaStreamSynchronize(st), "esvm results");
    for (int64_t j = 0; j < m; ++j) converged[j] = uint8_t(hconv[j]);
}

}  // namespace simattr::cuda
