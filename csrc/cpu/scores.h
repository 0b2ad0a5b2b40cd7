// The exact float32 scoring kernel: every (row, key) product accumulated one feature after
// another, one fused multiply-add per feature, whatever the pair's position. A score thus
// depends on the two vectors alone (a BLAS GEMM rounds a product according to where it sits
// in the matrix it is given), so results are bitwise independent of thread counts, blocks
// and batch composition. Used by topk (cpu/topk_cpu.cpp) and the exemplar SVMs' decision
// values (cpu/esvm_cpu.cpp); the bfloat16 first pass re-scores with the same arithmetic
// (cpu/prefilter_kernels.h).
#pragma once
#include <cstdint>

namespace simattr {

// The micro-kernel's block: kMR rows x kNR keys.
constexpr int kMR = 8, kNR = 16;

// out[8, 16] (row stride ldo) = 8 rows of q (row stride ldq, d features each) . one panel of
// 16 keys packed [d][16].
void micro_tile(const float* q, int64_t ldq, const float* panel, int64_t d, float* out, int64_t ldo);

// Keys [n, d] (row stride ldk) as panels [ceil(n / 16)][d][16] into dst, zero-padded (dst
// holds ceil(n / 16) * 16 * d floats), with threads over panels.
void pack_panels(const float* keys, int64_t ldk, int64_t n, int64_t d, float* dst, int n_threads = 1);

// out[m, n] (row stride ldo) = A [m, d] (row stride lda) . keys^T, the n keys packed by
// pack_panels: the same scores as topk computes for these pairs, bit for bit. Threads split
// the keys in runs of whole panels.
void scores_packed(const float* a, int64_t lda, int64_t m, const float* panels, int64_t n, int64_t d,
                   float* out, int64_t ldo, int n_threads);

}  // namespace simattr
