// AVX-512 loops of the first pass's candidate bookkeeping (cpu/prefilter_candidates.h): a
// branch-free scalar loop spends about six instructions an entry on these, a compress 16
// entries in as many. Whole vectors are compressed in registers and stored masked: a
// compressing store to memory is microcoded on some CPUs (Zen 4).
#include <immintrin.h>

#include "cpu/prefilter_candidates.h"

namespace simattr {
namespace prefilter_detail {

namespace {

// The lanes [0, n - c) of a block at c, or all 16.
inline __mmask16 live_lanes(int64_t n, int64_t c) {
    return n - c >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - c)) - 1);
}

// Stores at out, in order, the rows of a block of 16 (lanes 0-7 in lo, 8-15 in hi) chosen by m.
__attribute__((target("avx512f"))) inline void store_rows(int64_t* out, __m512i lo, __m512i hi, __mmask16 m) {
    const __mmask8 mlo = __mmask8(m & 0xFF), mhi = __mmask8(m >> 8);
    const int plo = __builtin_popcount(mlo), phi = __builtin_popcount(mhi);
    _mm512_mask_storeu_epi64(out, __mmask8((1u << plo) - 1), _mm512_maskz_compress_epi64(mlo, lo));
    _mm512_mask_storeu_epi64(out + plo, __mmask8((1u << phi) - 1), _mm512_maskz_compress_epi64(mhi, hi));
}

}  // namespace

// In place: a block's entries are loaded before any store, and stores go at or below it.
__attribute__((target("avx512f"))) int64_t keep_reaching(float* up, int64_t* row, int64_t n, float floor) {
    const __m512 vf = _mm512_set1_ps(floor);
    int64_t kept = 0;
    for (int64_t c = 0; c < n; c += 16) {
        const __mmask16 live = live_lanes(n, c);
        const __m512 u = _mm512_maskz_loadu_ps(live, up + c);
        const __m512i lo = _mm512_maskz_loadu_epi64(__mmask8(live), row + c),
                      hi = _mm512_maskz_loadu_epi64(__mmask8(live >> 8), row + c + 8);
        const __mmask16 m = _mm512_mask_cmp_ps_mask(live, u, vf, _CMP_GE_OQ);
        const int p = __builtin_popcount(m);
        _mm512_mask_storeu_ps(up + kept, __mmask16((1u << p) - 1), _mm512_maskz_compress_ps(m, u));
        store_rows(row + kept, lo, hi, m);
        kept += p;
    }
    return kept;
}

__attribute__((target("avx512f"))) int64_t keep_reaching(float* v, int64_t n, float floor) {
    const __m512 vf = _mm512_set1_ps(floor);
    int64_t kept = 0;
    for (int64_t c = 0; c < n; c += 16) {
        const __mmask16 live = live_lanes(n, c);
        const __m512 x = _mm512_maskz_loadu_ps(live, v + c);
        const __mmask16 m = _mm512_mask_cmp_ps_mask(live, x, vf, _CMP_GE_OQ);
        const int p = __builtin_popcount(m);
        _mm512_mask_storeu_ps(v + kept, __mmask16((1u << p) - 1), _mm512_maskz_compress_ps(m, x));
        kept += p;
    }
    return kept;
}

__attribute__((target("avx512f"))) int64_t count_reaching(const float* v, int64_t n, float x) {
    const __m512 vx = _mm512_set1_ps(x);
    int64_t count = 0;
    for (int64_t c = 0; c < n; c += 16)
        count += __builtin_popcount(_mm512_mask_cmp_ps_mask(
            live_lanes(n, c), _mm512_maskz_loadu_ps(live_lanes(n, c), v + c), vx, _CMP_GE_OQ));
    return count;
}

__attribute__((target("avx512f"))) int64_t split_reaching(float* up, int64_t* row, int64_t n, float floor,
                                                          int64_t cap, int64_t* taken_rows, int64_t* taken) {
    const __m512 vf = _mm512_set1_ps(floor);
    int64_t kept = 0, t = 0;
    for (int64_t c = 0; c < n; c += 16) {
        const __mmask16 live = live_lanes(n, c);
        const __m512 u = _mm512_maskz_loadu_ps(live, up + c);
        const __m512i lo = _mm512_maskz_loadu_epi64(__mmask8(live), row + c),
                      hi = _mm512_maskz_loadu_epi64(__mmask8(live >> 8), row + c + 8);
        uint32_t take = _mm512_mask_cmp_ps_mask(live, u, vf, _CMP_GE_OQ);
        while (t + __builtin_popcount(take) > cap)
            take &= ~(1u << (31 - __builtin_clz(take)));  // the cap's last block
        const __mmask16 stay = __mmask16(live & ~take);
        store_rows(taken_rows + t, lo, hi, __mmask16(take));
        t += __builtin_popcount(take);
        const int p = __builtin_popcount(stay);
        _mm512_mask_storeu_ps(up + kept, __mmask16((1u << p) - 1), _mm512_maskz_compress_ps(stay, u));
        store_rows(row + kept, lo, hi, stay);
        kept += p;
    }
    *taken = t;
    return kept;
}

}  // namespace prefilter_detail
}  // namespace simattr
