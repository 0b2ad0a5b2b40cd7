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

__attribute__((target("avx512f,avx512bf16"))) void bf16_micro(const uint32_t* q, int64_t dp,
                                                              const uint32_t* panels, float* out,
                                                              int64_t ldo) {
    __m512 a[8][2];
    for (int i = 0; i < 8; ++i) a[i][0] = a[i][1] = _mm512_setzero_ps();
    const uint32_t* p1 = panels + dp * 16;
    for (int64_t c = 0; c < dp; ++c) {
        const __m512bh k0 = (__m512bh)_mm512_loadu_si512(panels + c * 16);
        const __m512bh k1 = (__m512bh)_mm512_loadu_si512(p1 + c * 16);
        for (int i = 0; i < 8; ++i) {
            const __m512bh b = (__m512bh)_mm512_set1_epi32(int(q[i * dp + c]));
            a[i][0] = _mm512_dpbf16_ps(a[i][0], b, k0);
            a[i][1] = _mm512_dpbf16_ps(a[i][1], b, k1);
        }
    }
    for (int i = 0; i < 8; ++i) {
        _mm512_storeu_ps(out + i * ldo, a[i][0]);
        _mm512_storeu_ps(out + i * ldo + 16, a[i][1]);
    }
}

__attribute__((target("avx512f"))) int64_t bound_filter(const float* a, int64_t n, const QueryFactors& f,
                                                        const float* dx, const float* xt, const float* x,
                                                        const float* sq, float floor, int32_t* idx, float* up,
                                                        float* lo, int64_t* n_lo) {
    const float inf = std::numeric_limits<float>::infinity();
    const __m512 vfl = _mm512_set1_ps(floor), fdx = _mm512_set1_ps(f.dx), fxt = _mm512_set1_ps(f.xt),
                 fx = _mm512_set1_ps(f.x), fabs_ = _mm512_set1_ps(f.abs), vinf = _mm512_set1_ps(inf),
                 vninf = _mm512_set1_ps(-inf), slack = _mm512_set1_ps(std::ldexp(1.f, -21));
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    int64_t cnt = 0, cnt_lo = 0;
    for (int64_t j0 = 0; j0 < n; j0 += 16) {
        const __mmask16 live = n - j0 >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j0)) - 1);
        const __m512 va = _mm512_maskz_loadu_ps(live, a + j0);
        const __m512 e = _mm512_add_ps(
            _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(fdx, _mm512_maskz_loadu_ps(live, dx + j0)),
                                        _mm512_mul_ps(fxt, _mm512_maskz_loadu_ps(live, xt + j0))),
                          _mm512_mul_ps(fx, _mm512_maskz_loadu_ps(live, x + j0))),
            fabs_);
        // The score s~ in the metric's units and the half-width t of its interval.
        __m512 sc, t;
        if (sq == nullptr) {
            sc = va;
            t = _mm512_add_ps(_mm512_mul_ps(e, _mm512_set1_ps(1.0000153f)),
                              _mm512_mul_ps(slack, _mm512_abs_ps(va)));
        } else {
            const __m512 vs = _mm512_maskz_loadu_ps(live, sq + j0);
            sc = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(2.f), va), vs);
            const __m512 mag =
                _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(2.f), _mm512_abs_ps(va)), _mm512_abs_ps(vs));
            t = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(2.0078125f), e), _mm512_mul_ps(slack, mag));
        }
        __m512 u = _mm512_add_ps(sc, t), l = _mm512_sub_ps(sc, t);
        // A non-finite score (an element beyond bfloat16's range) or bound (NaN from inf * 0)
        // says nothing: widen the interval to everything.
        const __mmask16 finite = _mm512_cmp_ps_mask(_mm512_abs_ps(sc), vinf, _CMP_LT_OQ);
        u = _mm512_mask_blend_ps(finite & _mm512_cmp_ps_mask(u, u, _CMP_ORD_Q), vinf, u);
        l = _mm512_mask_blend_ps(finite & _mm512_cmp_ps_mask(l, l, _CMP_ORD_Q), vninf, l);
        const __mmask16 pass = _mm512_mask_cmp_ps_mask(live, u, vfl, _CMP_GE_OQ);
        if (pass == 0) continue;  // most blocks, once the floor is up
        // Compress in registers and store whole vectors: a compressing store to memory is
        // microcoded on some CPUs (Zen 4).
        _mm512_storeu_si512(
            idx + cnt, _mm512_maskz_compress_epi32(pass, _mm512_add_epi32(iota, _mm512_set1_epi32(int(j0)))));
        _mm512_storeu_ps(up + cnt, _mm512_maskz_compress_ps(pass, u));
        const __mmask16 high = _mm512_mask_cmp_ps_mask(pass, l, vfl, _CMP_GE_OQ);
        _mm512_storeu_ps(lo + cnt_lo, _mm512_maskz_compress_ps(high, l));
        cnt += __builtin_popcount(pass);
        cnt_lo += __builtin_popcount(high);
    }
    *n_lo = cnt_lo;
    return cnt;
}

// Scores of G groups of 16 rows each (src[G][16] row pointers) against q, features [c0, c0 + w)
// added to acc[G]. Each pair's score is one chain of d dependent multiply-adds (the exact
// path's order): with one group in flight the chain's latency, not the shuffles, sets the
// pace, so groups go two at a time where there are two.
template <int G>
__attribute__((target("avx512f"))) inline void score_groups(const float* q, const float* const* src,
                                                            int64_t d, __m512* acc) {
    for (int64_t c0 = 0; c0 < d; c0 += 16) {
        const int64_t w = std::min<int64_t>(16, d - c0);
        const __mmask16 live = w == 16 ? __mmask16(0xFFFF) : __mmask16((1u << w) - 1);
        for (int g = 0; g < G; ++g) {
            __m512 r[16], t[16];
            for (int i = 0; i < 16; ++i) r[i] = _mm512_maskz_loadu_ps(live, src[g * 16 + i] + c0);
            transpose16(r, t);
            // Only the w real features: an extra multiply-add of zeros would turn -0 into +0.
            for (int64_t e = 0; e < w; ++e) acc[g] = _mm512_fmadd_ps(_mm512_set1_ps(q[c0 + e]), t[e], acc[g]);
        }
    }
}

__attribute__((target("avx512f"))) void score_candidates(const float* q, const float* keys, int64_t ldk,
                                                         const int64_t* rows, int64_t n, int64_t d,
                                                         float* out) {
    for (int64_t j0 = 0; j0 < n;) {
        const int64_t m = std::min<int64_t>(32, n - j0);
        const float* src[32];  // padding lanes repeat the last key; their scores are dropped
        for (int r = 0; r < 32; ++r) src[r] = keys + rows[j0 + std::min<int64_t>(r, m - 1)] * ldk;
        __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
        if (m > 16)
            score_groups<2>(q, src, d, acc);
        else
            score_groups<1>(q, src, d, acc);
        float tmp[32];
        _mm512_storeu_ps(tmp, acc[0]);
        _mm512_storeu_ps(tmp + 16, acc[1]);
        std::copy(tmp, tmp + m, out + j0);
        j0 += m;
    }
}

}  // namespace simattr
