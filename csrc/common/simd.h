// Runtime SIMD dispatch without -march=native: GCC/Clang function multi-versioning compiles
// the marked function for AVX-512, AVX2+FMA and the baseline, and picks one at load time
// from the CPU's features. Distributed builds stay portable; hot loops still vectorise.
#pragma once

// (GCC 12 resolves "arch=x86-64-v4" clones to the default one, so clones name features.)
// Everything a cloned function calls in its hot loop must be SIMATTR_INLINE: a helper
// that is not inlined is compiled once, for the baseline, and the clone gains nothing.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define SIMATTR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define SIMATTR_INLINE __attribute__((always_inline)) inline
#else
#define SIMATTR_CLONES
#define SIMATTR_INLINE inline
#endif
