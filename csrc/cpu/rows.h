// Rows as the kernels take them: float32, finite, and of unit norm for cosine, prepared in one
// pass over the input (float16 bits or float32) with threads over rows. The package's only
// row normalisation on the CPU, so that every path (in RAM, streamed, float16 or float32)
// gives a row the same float32 values.
#pragma once
#include <cstdint>

namespace simattr {

// dst [n, d] (row stride d) = src [n, d] (row stride lds) as float32. With `normalize`, each
// row is then divided by its norm: the sum of squares in double, in a fixed order (eight
// partial sums by feature index modulo 8, added pairwise), its square root rounded to float32;
// a zero row stays zero. dst may be src (float32, lds == d). Returns the first row holding a
// NaN or an infinity, or -1 (such rows are left in an unspecified state).
int64_t prepare_rows_f16(const uint16_t* src, int64_t lds, int64_t n, int64_t d, float* dst, bool normalize,
                         int n_threads);
int64_t prepare_rows_f32(const float* src, int64_t lds, int64_t n, int64_t d, float* dst, bool normalize,
                         int n_threads);

// sq [n] = each float32 row's sum of squares src [n, d] (row stride lds), in double and the
// order above, with threads over rows: the check of rows used as they are (inner products:
// their norms must leave float32 scores finite). Returns the first row holding a NaN or an
// infinity (its sum is not finite: squares of floats cannot overflow a double), or -1.
int64_t row_sq_norms_f32(const float* src, int64_t lds, int64_t n, int64_t d, double* sq, int n_threads);

}  // namespace simattr
