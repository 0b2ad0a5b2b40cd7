// Runtime SIMD dispatch without -march=native: GCC/Clang function multi-versioning compiles
// the marked function for a few instruction sets and picks one at load time from the CPU's
// features. Distributed builds stay portable; hot loops still vectorise.
#pragma once

// Clones name features, not architectures: an "arch=" clone is chosen by CPU model (GCC 12
// resolves "arch=x86-64-v4" to the default one, and "arch=haswell" is never picked on AMD).
// Everything a cloned function calls in its hot loop must be SIMATTR_INLINE: a helper
// that is not inlined is compiled once, for the baseline, and the clone gains nothing.
//
// SIMATTR_CLONES (AVX-512, AVX2, baseline) suits integer work such as packed top-k keys.
// SIMATTR_CLONES_FMA (AVX-512, FMA, baseline) is for floating-point kernels: a clone cannot
// name AVX2 and FMA together, and the "avx2" one has no FMA, so its `acc += a * b` would round
// twice, at half the speed, and differ in the last bits from the AVX-512 clone. The "fma"
// clone (with AVX's 256-bit float vectors) is what every AVX2 CPU without AVX-512 runs, and it
// fuses the multiply-adds as the AVX-512 clone does: the same scores on both.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define SIMATTR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define SIMATTR_CLONES_FMA __attribute__((target_clones("avx512f", "fma", "default")))
#define SIMATTR_INLINE __attribute__((always_inline)) inline
#else
#define SIMATTR_CLONES
#define SIMATTR_CLONES_FMA
#define SIMATTR_INLINE inline
#endif
