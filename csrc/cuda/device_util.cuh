// Device helpers shared by the CUDA kernels: element loads of float32/float16 inputs, warp
// reductions, and the mapping of non-finite scores below every real one.
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

#include "common/views.h"

namespace simattr::cuda {

constexpr unsigned kFullMask = 0xffffffffu;

// Element i of a float32 or float16 array, as float.
__device__ __forceinline__ float load(const void* p, DType t, int64_t i) {
    return t == DType::F32 ? static_cast<const float*>(p)[i] : __half2float(static_cast<const __half*>(p)[i]);
}

// Sum over the 32 lanes of a warp, returned to every lane (so all lanes take the same
// decisions afterwards). The whole warp must call it.
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(kFullMask, v, o);
    return __shfl_sync(kFullMask, v, 0);
}

// Squared norm of row `row` of a [*, d] matrix, by one warp (every lane gets it).
__device__ __forceinline__ double warp_sq_norm(const void* x, DType t, int64_t row, int64_t d) {
    const int lane = threadIdx.x & 31;
    double s = 0.0;
    for (int64_t c = lane; c < d; c += 32) {
        const double v = load(x, t, row * d + c);
        s += v * v;
    }
    return warp_sum(s);
}

// A NaN score (from an overflowing product, say) must not pack as the best key: it is mapped
// to -inf, below every real score, as the CPU would never offer it.
__device__ __forceinline__ float finite_or_worst(float s) {
    return isnan(s) ? -INFINITY : s;
}

}  // namespace simattr::cuda
