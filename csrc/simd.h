// Runtime SIMD dispatch without -march=native: GCC/Clang function multi-versioning compiles
// the marked function for AVX-512, AVX2+FMA and the baseline, and picks one at load time
// from the CPU's features. Distributed builds stay portable; hot loops still vectorise.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define SIMATTR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SIMATTR_CLONES
#endif
