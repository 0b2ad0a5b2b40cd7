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
    const double* qd_neg;   // [koff[n_classes]] x.x + B^2 (+ diag_neg, added per class)
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

// One sweep's coordinate order, shuffled by the whole warp at once: the active slots are cut
// into 32 runs (the cut points move by a random offset every sweep, so slots migrate between
// runs) and each lane Fisher-Yates shuffles its own run with its own generator. liblinear's DCD
// needs a varying order, not a uniform permutation; one lane shuffling alone was a serial
// O(active) step per sweep. `shared` is identical in every lane (same seed, same draws).
__device__ void warp_shuffle(int* index, int64_t active, SplitMix64& shared, SplitMix64& own) {
    const int lane = threadIdx.x & 31;
    const int64_t len = (active + 31) / 32;
    const int64_t offset = len > 1 ? shared.below(len) : 0;
    const int64_t start = offset + lane * len, stop = offset + (lane + 1) * len;
    const int64_t lo = lane == 0 ? 0 : (start < active ? start : active);
    const int64_t hi = lane == 31 ? active : (stop < active ? stop : active);
    for (int64_t t = lo; t + 1 < hi; ++t) {
        const int64_t u = t + own.below(hi - t);
        const int tmp = index[t];
        index[t] = index[u];
        index[u] = tmp;
    }
    __syncwarp();
}

// One warp per query, every class of the batch in one launch. Every lane holds the same
// scalars and takes the same decisions; lane 0 alone writes the shared per-slot state.
__global__ void solve(SolveArgs a) {
    extern __shared__ double smem[];
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    const int64_t j = int64_t(blockIdx.x) * (blockDim.x / 32) + warp;
    if (j >= a.m) return;
    const int c = a.qclass[j];
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

    SplitMix64 shared(a.seeds[j]), own(a.seeds[j] ^ (0x9E3779B97F4A7C15ull * uint64_t(lane + 1)));
    int64_t active = l, iter = 0;
    double pg_max_old = 1e300, pg_min_old = -1e300;
    int done = 0;
    while (iter < a.max_iter) {
        warp_shuffle(index, active, shared, own);
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

void esvm_topk(const void* queries, DType qtype, const int64_t* query_rows, const int32_t* query_class,
               const int32_t* host_query_class, int64_t m, const void* keys, DType ktype,
               const int64_t* key_rows, const int64_t* host_key_offsets, int64_t n_classes, int64_t d,
               const int64_t* query_ids, const EsvmParams& p, TopkAccumulatorCuda& acc, int64_t* n_iter,
               uint8_t* converged) {
    if (m == 0) return;
    if (acc.rows() < m)
        throw std::invalid_argument("esvm_topk (cuda): accumulator has fewer rows than queries");
    // Host bookkeeping: each query's output offset, and the runs of queries of one class.
    std::vector<int64_t> foff(m);
    int64_t total = 0;
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
        foff[j] = total;
        total += n;
    }
    const int64_t n_keys = host_key_offsets[n_classes];
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
    solve<<<int((m + warps - 1) / warps), 32 * warps, smem, st>>>(a);
    check_launch(st, "esvm solve kernel");
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
