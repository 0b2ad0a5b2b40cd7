#include "cpu/gram.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

namespace simattr {

namespace {

typedef float v8f __attribute__((vector_size(32)));
typedef double v8d __attribute__((vector_size(64)));

// The shuffles below use their masked forms with a full mask: GCC 12 warns that the plain
// ones read an uninitialised register (their pass-through operand, unused under a full mask).
constexpr __mmask8 kAll = 0xFF;

// Adds 128-bit lanes L0 + L1 and L2 + L3 of a, then of b: [a01, a23, b01, b23].
__attribute__((target("avx512f"))) inline __m512d halve(__m512d a, __m512d b) {
    return _mm512_add_pd(_mm512_mask_shuffle_f64x2(a, kAll, a, b, 0x88),
                         _mm512_mask_shuffle_f64x2(a, kAll, a, b, 0xDD));
}

// The lane sums of 16 vectors v[16] into out[16], together: three rounds of shuffles and
// adds, each halving the vectors (pairs of lanes, then of 128-bit lanes twice): 42
// instructions where summing each vector on its own took about ten apiece. The kernel runs
// 18% faster for it at d = 256, 9% at d = 512. Each sum's order is fixed: adjacent lanes,
// then pairs of those, then pairs of those.
__attribute__((target("avx512f"))) inline void lane_sums16(const __m512d v[16], double out[16]) {
    __m512d s1[8], s2[4];
    for (int p = 0; p < 8; ++p)  // per 128-bit lane: (v[2p] lanes 2L + 2L+1, v[2p+1] the same)
        s1[p] = _mm512_add_pd(_mm512_mask_unpacklo_pd(v[2 * p], kAll, v[2 * p], v[2 * p + 1]),
                              _mm512_mask_unpackhi_pd(v[2 * p], kAll, v[2 * p], v[2 * p + 1]));
    for (int p = 0; p < 4; ++p) s2[p] = halve(s1[2 * p], s1[2 * p + 1]);
    _mm512_storeu_pd(out, halve(s2[0], s2[1]));
    _mm512_storeu_pd(out + 8, halve(s2[2], s2[3]));
}

// The same for 8 vectors (one round fewer; each sum in the same order).
__attribute__((target("avx512f"))) inline void lane_sums8(const __m512d v[8], double out[8]) {
    __m512d s1[4], s2[2];
    for (int p = 0; p < 4; ++p)
        s1[p] = _mm512_add_pd(_mm512_mask_unpacklo_pd(v[2 * p], kAll, v[2 * p], v[2 * p + 1]),
                              _mm512_mask_unpackhi_pd(v[2 * p], kAll, v[2 * p], v[2 * p + 1]));
    for (int p = 0; p < 2; ++p) s2[p] = halve(s1[2 * p], s1[2 * p + 1]);
    _mm512_storeu_pd(out, halve(s2[0], s2[1]));
}

// Rows per block of new rows: six against four old rows keeps 24 accumulators, four old
// rows and one new row in the 32 registers, with ten loads to 24 multiply-adds where 4 x 4
// had eight to 16 (7-15% faster at d = 256 and 512; every sum is the same).
constexpr int kBlockRows = 6;

// One block: rows a[0..kBlockRows) (double, the new rows) against rows b[0..3] (float32), dot
// products into s[kBlockRows][4]. Eight features a step: four loads and conversions of b,
// kBlockRows loads of a, 4 kBlockRows multiply-adds (contracted to FMAs).
__attribute__((target("avx512f"))) void block_rows(const double* const* a, const float* const* b, int64_t d,
                                                   double s[kBlockRows][4]) {
    v8d acc[kBlockRows][4] = {};
    const int64_t d8 = d / 8 * 8;
    for (int64_t c = 0; c < d8; c += 8) {
        v8d bv[4];
        for (int j = 0; j < 4; ++j) {
            v8f t;
            __builtin_memcpy(&t, b[j] + c, sizeof(t));
            bv[j] = __builtin_convertvector(t, v8d);
        }
        for (int i = 0; i < kBlockRows; ++i) {
            v8d av;
            __builtin_memcpy(&av, a[i] + c, sizeof(av));
            for (int j = 0; j < 4; ++j) acc[i][j] += av * bv[j];
        }
    }
    static_assert(kBlockRows == 6, "the lane sums below take 16 + 8 vectors");
    __m512d v[4 * kBlockRows];
    for (int i = 0; i < kBlockRows; ++i)
        for (int j = 0; j < 4; ++j) __builtin_memcpy(&v[4 * i + j], &acc[i][j], sizeof(v[0]));
    double sums[4 * kBlockRows];
    lane_sums16(v, sums);
    lane_sums8(v + 16, sums + 16);
    for (int i = 0; i < kBlockRows; ++i)
        for (int j = 0; j < 4; ++j) {
            double t = sums[4 * i + j];
            for (int64_t c = d8; c < d; ++c) t += a[i][c] * double(b[j][c]);
            s[i][j] = t;
        }
}

std::atomic<bool> g_force_dgemm{false};  // set_gram_kernel("dgemm")

}  // namespace

bool gram_f32_enabled() {
#if defined(__x86_64__) && defined(__GNUC__)
    static const bool cpu_ok = __builtin_cpu_supports("avx512f");
    return cpu_ok && !g_force_dgemm.load();
#else
    return false;
#endif
}

void set_gram_kernel(const char* name) {
    const std::string n(name);
    if (n != "auto" && n != "dgemm")
        throw std::invalid_argument("gram kernel: expected one of auto, dgemm; got '" + n + "'");
    g_force_dgemm = n == "dgemm";
}

__attribute__((target("avx512f"))) void gram_aug_f32(const float* const* x, int64_t l, int64_t d,
                                                     int64_t row0, double B, double* K) {
    if (l <= row0) return;
    // The new rows in double once [l - row0, d]; the others are converted in registers.
    thread_local std::vector<double> xn;
    xn.resize(size_t((l - row0) * d));
    for (int64_t i = row0; i < l; ++i)
        for (int64_t c = 0; c < d; ++c) xn[size_t((i - row0) * d + c)] = x[i][c];
    const double b2 = B * B;
    for (int64_t i0 = row0; i0 < l; i0 += kBlockRows) {
        const int64_t ni = std::min<int64_t>(kBlockRows, l - i0);
        const double* a[kBlockRows];  // a short block repeats its last row too
        for (int i = 0; i < kBlockRows; ++i)
            a[i] = xn.data() + (i0 - row0 + std::min<int64_t>(i, ni - 1)) * d;
        // Columns up to the block's last row: the lower triangle and its diagonal blocks.
        for (int64_t j0 = 0; j0 < i0 + ni; j0 += 4) {
            const int64_t nj = std::min<int64_t>(4, l - j0);
            const float* b[4];  // a short block repeats its last row; those sums are dropped
            for (int j = 0; j < 4; ++j) b[j] = x[j0 + std::min<int64_t>(j, nj - 1)];
            double s[kBlockRows][4];
            block_rows(a, b, d, s);
            for (int64_t i = 0; i < ni; ++i)
                for (int64_t j = 0; j < nj && j0 + j <= i0 + i; ++j) {
                    const double v = s[i][j] + b2;
                    K[(i0 + i) * l + j0 + j] = v;
                    K[(j0 + j) * l + i0 + i] = v;
                }
        }
    }
}

}  // namespace simattr
