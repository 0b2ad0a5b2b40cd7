#include <cuda_fp16.h>
#include <cub/device/device_segmented_sort.cuh>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <vector>

#include "common/packed_key.h"
#include "cuda/device_util.cuh"
#include "cuda/topk_cuda.h"

namespace simattr::cuda {

namespace {

constexpr int kTile = 64;      // queries and keys per block tile
constexpr int kDepth = 16;     // feature columns per shared-memory step
constexpr int kThreads = 256;  // 16 x 16 threads, 4 x 4 outputs each

__device__ __forceinline__ void offer(unsigned long long key, int64_t row, int64_t cap,
                                      unsigned long long* buf, unsigned int* count,
                                      const unsigned long long* thresh) {
    if (key < thresh[row]) {
        const unsigned int pos = atomicAdd(count + row, 1u);
        buf[row * cap + pos] = key;  // pos < cap: at most k kept + max_cols offered per push
    }
}

// One warp per row (blockDim 32 x 8): squared norms in float64.
__global__ void sq_norms(const void* x, DType t, int64_t n, int64_t d, double* out) {
    const int64_t r = blockIdx.x * int64_t(blockDim.y) + threadIdx.y;
    if (r >= n) return;
    const double s = warp_sq_norm(x, t, r, d);
    if (threadIdx.x == 0) out[r] = s;
}

__global__ void fused_scores(const void* q, DType qt, const void* k, DType kt, int64_t nq, int64_t nb,
                             int64_t d, int64_t id0, Metric metric, const double* qsq, const double* ksq,
                             const int64_t* qlab, const int64_t* klab, int64_t cap, unsigned long long* buf,
                             unsigned int* count, const unsigned long long* thresh) {
    __shared__ float qs[kDepth][kTile + 1];
    __shared__ float ks[kDepth][kTile + 1];
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const int64_t k0 = int64_t(blockIdx.x) * kTile;
    // gridDim.y is capped at 65,535: query tiles beyond it are taken in strides.
    for (int64_t q0 = int64_t(blockIdx.y) * kTile; q0 < nq; q0 += int64_t(gridDim.y) * kTile) {
        float acc[4][4] = {};
        for (int64_t c0 = 0; c0 < d; c0 += kDepth) {
            for (int e = threadIdx.x; e < kTile * kDepth; e += kThreads) {
                const int r = e / kDepth, c = e % kDepth;
                const bool inc = c0 + c < d;
                qs[c][r] = (q0 + r < nq && inc) ? load(q, qt, (q0 + r) * d + c0 + c) : 0.f;
                ks[c][r] = (k0 + r < nb && inc) ? load(k, kt, (k0 + r) * d + c0 + c) : 0.f;
            }
            __syncthreads();
#pragma unroll
            for (int c = 0; c < kDepth; ++c) {
                float a[4], b[4];
#pragma unroll
                for (int i = 0; i < 4; ++i) a[i] = qs[c][ty * 4 + i];
#pragma unroll
                for (int j = 0; j < 4; ++j) b[j] = ks[c][tx * 4 + j];
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
            }
            __syncthreads();
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int64_t r = q0 + ty * 4 + i;
            if (r >= nq) continue;
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int64_t c = k0 + tx * 4 + j;
                if (c >= nb) continue;
                if (qlab != nullptr && qlab[r] != klab[c]) continue;
                float s = acc[i][j];
                if (metric == Metric::Cosine) {
                    const double nn = sqrt(qsq[r]) * sqrt(ksq[c]);
                    s = nn > 0.0 ? float(double(s) / nn) : 0.f;  // zero rows score 0, as on the CPU
                } else if (metric == Metric::L2) {
                    s = float(2.0 * double(s) - ksq[c]);
                }
                offer(pack(finite_or_worst(s), id0 + c), r, cap, buf, count, thresh);
            }
        }
        __syncthreads();  // the next query tile reuses the shared tiles
    }
}

__global__ void offer_scores(const float* scores, int64_t row0, int64_t nrows, int64_t ncols,
                             const int64_t* ids, int64_t cap, unsigned long long* buf, unsigned int* count,
                             const unsigned long long* thresh) {
    // Rows on grid.y in strides (gridDim.y is capped at 65,535), columns on grid.x.
    for (int64_t r = blockIdx.y; r < nrows; r += gridDim.y)
        for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < ncols;
             c += int64_t(gridDim.x) * blockDim.x)
            offer(pack(finite_or_worst(scores[r * ncols + c]), ids[c]), row0 + r, cap, buf, count, thresh);
}

__global__ void segment_bounds(const unsigned int* count, int64_t nq, int64_t cap, int* begin, int* end) {
    const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (r >= nq) return;
    begin[r] = int(r * cap);
    end[r] = int(r * cap + count[r]);
}

// After the sort: keep the best k per row and make the k-th the row's threshold.
__global__ void keep_best(const unsigned long long* sorted, int64_t nq, int64_t cap, int64_t k,
                          unsigned long long* buf, unsigned int* count, unsigned long long* thresh) {
    const int64_t r = blockIdx.x;
    const int64_t n = count[r];
    const int64_t keep = n < k ? n : k;
    for (int64_t j = threadIdx.x; j < keep; j += blockDim.x) buf[r * cap + j] = sorted[r * cap + j];
    __syncthreads();  // every thread has read count[r] before thread 0 rewrites it
    if (threadIdx.x == 0) {
        if (n >= k) thresh[r] = sorted[r * cap + k - 1];
        count[r] = static_cast<unsigned int>(keep);
    }
}

__global__ void decode_rows(const unsigned long long* buf, const unsigned int* count, int64_t cap, int64_t k,
                            float* scores, int64_t* ids) {
    const int64_t r = blockIdx.x;
    const int64_t n = count[r];
    for (int64_t j = threadIdx.x; j < k; j += blockDim.x) {
        if (j < n) {
            const unsigned long long key = buf[r * cap + j];
            scores[r * k + j] = unpack_score(key);
            ids[r * k + j] = unpack_id(key);
        } else {
            scores[r * k + j] = __int_as_float(0x7fc00000);  // quiet NaN
            ids[r * k + j] = -1;
        }
    }
}

__global__ void fill_u64(unsigned long long* p, int64_t n, unsigned long long v) {
    const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (i < n) p[i] = v;
}

int blocks_for(int64_t n, int threads) {
    return int((n + threads - 1) / threads);
}

constexpr int64_t kMaxGridY = 65535;

}  // namespace

TopkAccumulatorCuda::TopkAccumulatorCuda(int64_t nq, int64_t k, int64_t max_cols)
    : nq_(nq), k_(k), max_cols_(max_cols), cap_(k + max_cols) {
    if (nq <= 0 || k <= 0 || max_cols <= 0)
        throw std::invalid_argument("TopkAccumulatorCuda: sizes must be positive");
    if (nq * cap_ >= (int64_t(1) << 31))
        throw std::invalid_argument(
            "TopkAccumulatorCuda: nq * (k + max_cols) must be < 2^31; use fewer queries per call");
    buf_.reset(size_t(nq * cap_));
    sorted_.reset(size_t(nq * cap_));
    thresh_.reset(size_t(nq));
    count_.reset(size_t(nq));
    begin_.reset(size_t(nq));
    end_.reset(size_t(nq));
    cudaStream_t st = static_cast<cudaStream_t>(stream_.get());
    fill_u64<<<blocks_for(nq, 256), 256, 0, st>>>(thresh_.get(), nq, ~0ull);
    check_launch(st, "TopkAccumulatorCuda init");
    memset_async(count_.get(), 0, sizeof(unsigned int) * nq, st);
}

void TopkAccumulatorCuda::compact() {
    cudaStream_t st = static_cast<cudaStream_t>(stream_.get());
    segment_bounds<<<blocks_for(nq_, 256), 256, 0, st>>>(count_.get(), nq_, cap_, begin_.get(), end_.get());
    check_launch(st, "top-k segment bounds");
    size_t bytes = 0;
    check(cub::DeviceSegmentedSort::SortKeys(nullptr, bytes, buf_.get(), sorted_.get(), int(nq_ * cap_),
                                             int(nq_), begin_.get(), end_.get(), st),
          "cub segmented sort (size)");
    temp_.reset(bytes);
    check(cub::DeviceSegmentedSort::SortKeys(temp_.get(), bytes, buf_.get(), sorted_.get(), int(nq_ * cap_),
                                             int(nq_), begin_.get(), end_.get(), st),
          "cub segmented sort");
    keep_best<<<int(nq_), 256, 0, st>>>(sorted_.get(), nq_, cap_, k_, buf_.get(), count_.get(),
                                        thresh_.get());
    check_launch(st, "top-k compaction");
}

void TopkAccumulatorCuda::topk(const void* queries, DType qtype, const void* keys, DType ktype, int64_t nb,
                               int64_t d, int64_t id0, Metric metric, const int64_t* query_labels,
                               const int64_t* key_labels) {
    if (nb > max_cols_) throw std::invalid_argument("TopkAccumulatorCuda::topk: more keys than max_cols");
    if (nb == 0) return;
    qnorm_.reset(size_t(nq_));
    knorm_.reset(size_t(nb));
    cudaStream_t st = static_cast<cudaStream_t>(stream_.get());
    const dim3 nthreads(32, 8);
    sq_norms<<<blocks_for(nq_, 8), nthreads, 0, st>>>(queries, qtype, nq_, d, qnorm_.get());
    sq_norms<<<blocks_for(nb, 8), nthreads, 0, st>>>(keys, ktype, nb, d, knorm_.get());
    check_launch(st, "top-k norms");
    const dim3 grid(unsigned(blocks_for(nb, kTile)),
                    unsigned(std::min<int64_t>(blocks_for(nq_, kTile), kMaxGridY)));
    fused_scores<<<grid, kThreads, 0, st>>>(queries, qtype, keys, ktype, nq_, nb, d, id0, metric,
                                            qnorm_.get(), knorm_.get(), query_labels, key_labels, cap_,
                                            buf_.get(), count_.get(), thresh_.get());
    check_launch(st, "fused top-k kernel");
    compact();
}

void TopkAccumulatorCuda::push_scores(const float* scores, int64_t row0, int64_t nrows, int64_t ncols,
                                      const int64_t* ids) {
    if (ncols > max_cols_)
        throw std::invalid_argument("TopkAccumulatorCuda::push_scores: more columns than max_cols");
    if (nrows == 0 || ncols == 0) return;
    cudaStream_t st = static_cast<cudaStream_t>(stream_.get());
    const dim3 grid(unsigned(std::min<int64_t>(blocks_for(ncols, 256), 1024)),
                    unsigned(std::min<int64_t>(nrows, kMaxGridY)));
    offer_scores<<<grid, 256, 0, st>>>(scores, row0, nrows, ncols, ids, cap_, buf_.get(), count_.get(),
                                       thresh_.get());
    check_launch(st, "offer scores kernel");
    compact();
}

void TopkAccumulatorCuda::finalize(float* host_scores, int64_t* host_ids) {
    cudaStream_t st = static_cast<cudaStream_t>(stream_.get());
    DeviceBuffer<float> s(size_t(nq_ * k_));
    DeviceBuffer<int64_t> i(size_t(nq_ * k_));
    decode_rows<<<int(nq_), 256, 0, st>>>(buf_.get(), count_.get(), cap_, k_, s.get(), i.get());
    check_launch(st, "top-k decode");
    copy_to_host_async(host_scores, s.get(), sizeof(float) * nq_ * k_, st);
    copy_to_host_async(host_ids, i.get(), sizeof(int64_t) * nq_ * k_, st);
    stream_.synchronize();
}

}  // namespace simattr::cuda
