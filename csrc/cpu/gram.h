// The augmented Gram rows of an exemplar SVM's working set, computed in double straight from
// its float32 rows by our own AVX-512 kernel: no copy of the rows in double and no BLAS
// packing. With dgemm those two cost as much as a third of the GEMM itself on the small
// products of one round (new rows x working set), and half the Gram time in ImageNet's shape.
#pragma once
#include <cstdint>

namespace simattr {

// Whether gram_aug_f32 is used: the CPU has AVX-512F and set_gram_kernel did not force the
// fallback. Otherwise the caller converts the rows to double and uses gram_aug (cpu/blas.h).
bool gram_f32_enabled();

// For tests, so that the fallback runs on an AVX-512 machine too: "auto" (the default) or
// "dgemm". Throws std::invalid_argument on any other name.
void set_gram_kernel(const char* name);

// K [l, l] row-major: rows row0..l-1 (every column) and their mirror in columns row0..l-1 set
// to x_i . x_j + B^2, for x [l] pointers to float32 rows of d features (read where they are:
// no gather). Products are exact in double and summed in double, eight partial sums a pair.
// Single-threaded (called from inside parallel loops).
void gram_aug_f32(const float* const* x, int64_t l, int64_t d, int64_t row0, double B, double* K);

}  // namespace simattr
