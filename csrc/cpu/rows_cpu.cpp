#include "cpu/rows.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "common/parallel.h"

namespace simattr {

namespace {

constexpr int64_t kRowsPerTask = 16;  // rows of one parallel task

// binary16 bits -> float, exactly: every float16 value is a float32 value.
inline float half_to_float(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0) return std::copysign(float(man) * 0x1p-24f, sign ? -1.f : 1.f);  // zero, subnormal
    const uint32_t bits = sign | (exp == 0x1f ? 0x7f800000u : (exp + 112) << 23) | (man << 13);
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

bool has_f16c() {
#if defined(__x86_64__) && defined(__GNUC__)
    static const bool ok = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
    return ok;
#else
    return false;
#endif
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx,f16c"))) void half_row_f16c(const uint16_t* s, int64_t d, float* y) {
    int64_t c = 0;
    for (; c + 8 <= d; c += 8)
        _mm256_storeu_ps(y + c, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + c))));
    for (; c < d; ++c) y[c] = half_to_float(s[c]);
}
#endif

void half_row(const uint16_t* s, int64_t d, float* y) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (has_f16c()) return half_row_f16c(s, d, y);
#endif
    for (int64_t c = 0; c < d; ++c) y[c] = half_to_float(s[c]);
}

// Sum of squares of y [d] in double: eight partial sums by feature index modulo 8, added
// pairwise (a fixed order, the same with every instruction set).
double sum_of_squares(const float* y, int64_t d) {
    double part[8] = {};
    int64_t c = 0;
    for (; c + 8 <= d; c += 8)
        for (int j = 0; j < 8; ++j) part[j] += double(y[c + j]) * double(y[c + j]);
    for (int j = 0; c < d; ++c, ++j) part[j] += double(y[c]) * double(y[c]);
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

// Checks row y [d] and, with `normalize`, divides it by its norm. False: a NaN or an infinity.
bool finish_row(float* y, int64_t d, bool normalize) {
    float nonfinite = 0.f;  // x * 0 is NaN exactly when x is NaN or infinite
    for (int64_t c = 0; c < d; ++c) nonfinite += y[c] * 0.f;
    if (nonfinite != 0.f || std::isnan(nonfinite)) return false;
    if (!normalize) return true;
    float norm = float(std::sqrt(sum_of_squares(y, d)));
    if (norm == 0.f) norm = 1.f;
    for (int64_t c = 0; c < d; ++c) y[c] = y[c] / norm;
    return true;
}

// Runs row_ok(r) for every row r < n with threads over tasks of kRowsPerTask rows; returns the
// lowest row for which it returned false, or -1.
template <class RowOk>
int64_t first_failing_row(int64_t n, int n_threads, RowOk&& row_ok) {
    std::atomic<int64_t> first{n};
    parallel_for((n + kRowsPerTask - 1) / kRowsPerTask, n_threads, [&](int64_t t) {
        for (int64_t r = t * kRowsPerTask; r < std::min(n, (t + 1) * kRowsPerTask); ++r) {
            if (row_ok(r)) continue;
            int64_t seen = first.load();
            while (r < seen && !first.compare_exchange_weak(seen, r)) {
            }
        }
    });
    return first.load() == n ? -1 : first.load();
}

template <class Load>
int64_t prepare(int64_t n, int64_t d, float* dst, bool normalize, int n_threads, Load&& load) {
    return first_failing_row(n, n_threads, [&](int64_t r) {
        float* y = dst + r * d;
        load(r, y);
        return finish_row(y, d, normalize);
    });
}

}  // namespace

int64_t prepare_rows_f16(const uint16_t* src, int64_t lds, int64_t n, int64_t d, float* dst, bool normalize,
                         int n_threads) {
    return prepare(n, d, dst, normalize, n_threads,
                   [&](int64_t r, float* y) { half_row(src + r * lds, d, y); });
}

int64_t prepare_rows_f32(const float* src, int64_t lds, int64_t n, int64_t d, float* dst, bool normalize,
                         int n_threads) {
    return prepare(n, d, dst, normalize, n_threads, [&](int64_t r, float* y) {
        if (y != src + r * lds) std::copy(src + r * lds, src + r * lds + d, y);
    });
}

int64_t row_sq_norms_f32(const float* src, int64_t lds, int64_t n, int64_t d, double* sq, int n_threads) {
    return first_failing_row(n, n_threads, [&](int64_t r) {
        sq[r] = sum_of_squares(src + r * lds, d);
        return std::isfinite(sq[r]);
    });
}

}  // namespace simattr
