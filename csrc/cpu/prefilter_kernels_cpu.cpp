#include "cpu/prefilter_kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace simattr {

namespace {

// r[16] rows of 16 floats -> t[e] holds element e of every row (lane i: row i). Three stages:
// pairs of rows interleaved, groups of four gathered per 128-bit lane, then the 4 x 4
// 128-bit blocks transposed.
__attribute__((target("avx512f"))) inline void transpose16(const __m512 r[16], __m512 t[16]) {
    // The masked forms with a full mask: GCC 12 warns that the plain ones read an
    // uninitialised register (their pass-through operand, which a full mask never uses).
    const __mmask16 all = 0xFFFF;
    __m512 u[16], v[16];
    for (int p = 0; p < 8; ++p) {
        const __m512 a = r[2 * p], b = r[2 * p + 1];
        u[2 * p] = _mm512_mask_unpacklo_ps(a, all, a, b);      // per lane: a0 b0 a1 b1
        u[2 * p + 1] = _mm512_mask_unpackhi_ps(a, all, a, b);  // per lane: a2 b2 a3 b3
    }
    // v[4g + k]: per lane L, element 4L + k of rows 4g..4g+3.
    for (int g = 0; g < 4; ++g) {
        const __m512 *lo = u + 4 * g, *hi = u + 4 * g + 2;
        v[4 * g + 0] = _mm512_mask_shuffle_ps(lo[0], all, lo[0], hi[0], 0x44);
        v[4 * g + 1] = _mm512_mask_shuffle_ps(lo[0], all, lo[0], hi[0], 0xEE);
        v[4 * g + 2] = _mm512_mask_shuffle_ps(lo[1], all, lo[1], hi[1], 0x44);
        v[4 * g + 3] = _mm512_mask_shuffle_ps(lo[1], all, lo[1], hi[1], 0xEE);
    }
    for (int k = 0; k < 4; ++k) {
        const __m512 w0 = _mm512_mask_shuffle_f32x4(v[k], all, v[k], v[4 + k], 0x44);
        const __m512 w1 = _mm512_mask_shuffle_f32x4(v[k], all, v[k], v[4 + k], 0xEE);
        const __m512 w2 = _mm512_mask_shuffle_f32x4(v[8 + k], all, v[8 + k], v[12 + k], 0x44);
        const __m512 w3 = _mm512_mask_shuffle_f32x4(v[8 + k], all, v[8 + k], v[12 + k], 0xEE);
        t[0 + k] = _mm512_mask_shuffle_f32x4(w0, all, w0, w2, 0x88);
        t[4 + k] = _mm512_mask_shuffle_f32x4(w0, all, w0, w2, 0xDD);
        t[8 + k] = _mm512_mask_shuffle_f32x4(w1, all, w1, w3, 0x88);
        t[12 + k] = _mm512_mask_shuffle_f32x4(w1, all, w1, w3, 0xDD);
    }
}

}  // namespace

__attribute__((target("avx512f"))) int64_t float_filter(const float* a, int64_t n, const QueryFactors& f,
                                                        const float* dx, const float* xt, const float* x,
                                                        const float* sq, double floor, int64_t* out) {
    float fl = float(floor);
    if (double(fl) > floor) fl = std::nextafter(fl, -std::numeric_limits<float>::infinity());
    const __m512 vfl = _mm512_set1_ps(fl), fdx = _mm512_set1_ps(f.dx), fxt = _mm512_set1_ps(f.xt),
                 fx = _mm512_set1_ps(f.x), fabs_ = _mm512_set1_ps(f.abs),
                 slack = _mm512_set1_ps(std::ldexp(1.f, -21));
    int64_t cnt = 0;
    for (int64_t j0 = 0; j0 < n; j0 += 16) {
        const __mmask16 live = n - j0 >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j0)) - 1);
        const __m512 va = _mm512_maskz_loadu_ps(live, a + j0);
        const __m512 e = _mm512_add_ps(
            _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(fdx, _mm512_maskz_loadu_ps(live, dx + j0)),
                                        _mm512_mul_ps(fxt, _mm512_maskz_loadu_ps(live, xt + j0))),
                          _mm512_mul_ps(fx, _mm512_maskz_loadu_ps(live, x + j0))),
            fabs_);
        __m512 u;
        if (sq == nullptr) {
            u = _mm512_add_ps(va, _mm512_add_ps(_mm512_mul_ps(e, _mm512_set1_ps(1.0000153f)),
                                                _mm512_mul_ps(slack, _mm512_abs_ps(va))));
        } else {
            const __m512 vs = _mm512_maskz_loadu_ps(live, sq + j0);
            const __m512 mag =
                _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(2.f), _mm512_abs_ps(va)), _mm512_abs_ps(vs));
            u = _mm512_add_ps(
                _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(2.f), va), vs),
                _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(2.0078125f), e), _mm512_mul_ps(slack, mag)));
        }
        // !(u < fl): NaN passes. Passing keys are rare: walk the set bits.
        uint32_t m = _mm512_mask_cmp_ps_mask(live, u, vfl, _CMP_NLT_UQ);
        for (; m != 0; m &= m - 1) out[cnt++] = j0 + __builtin_ctz(m);
    }
    return cnt;
}

__attribute__((target("avx512f"))) void score_candidates(const float* q, const float* keys, int64_t ldk,
                                                         const int64_t* rows, int64_t n, int64_t d,
                                                         float* out) {
    for (int64_t j0 = 0; j0 < n; j0 += 16) {
        const int64_t m = std::min<int64_t>(16, n - j0);
        const float* src[16];  // padding lanes repeat the last key; their scores are dropped
        for (int r = 0; r < 16; ++r) src[r] = keys + rows[j0 + std::min<int64_t>(r, m - 1)] * ldk;
        __m512 acc = _mm512_setzero_ps();
        for (int64_t c0 = 0; c0 < d; c0 += 16) {
            const int64_t w = std::min<int64_t>(16, d - c0);
            const __mmask16 live = w == 16 ? __mmask16(0xFFFF) : __mmask16((1u << w) - 1);
            __m512 r[16], t[16];
            for (int i = 0; i < 16; ++i) r[i] = _mm512_maskz_loadu_ps(live, src[i] + c0);
            transpose16(r, t);
            // Only the w real features: an extra multiply-add of zeros would turn -0 into +0.
            for (int64_t e = 0; e < w; ++e) acc = _mm512_fmadd_ps(_mm512_set1_ps(q[c0 + e]), t[e], acc);
        }
        float tmp[16];
        _mm512_storeu_ps(tmp, acc);
        std::copy(tmp, tmp + m, out + j0);
    }
}

}  // namespace simattr
