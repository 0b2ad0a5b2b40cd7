// The bfloat16 first pass on AMX tiles (cpu/prefilter.h), where the CPU and the kernel allow
// them; the AVX512-BF16 micro-kernel (bf16_micro) otherwise. TDPBF16PS reads bfloat16 pairs
// as VDPBF16PS does (denormals as zero, exact products, float32 sums rounded to nearest even,
// at most two roundings a pair), so the rounding bound of cpu/prefilter_bound.h covers both.
#pragma once
#include <cstdint>
#include <cstring>

#include "cpu/prefilter_bound.h"

namespace simattr {

// AMX is used: the CPU has AMX-TILE and AMX-BF16, the OS granted the tile state, and the
// tiles agreed with bf16_micro on a test block at first use. Cached.
bool amx_available();

// Which kernel the first pass runs: "amx", "avx512bf16", "avx512bf16 (...)" saying why AMX
// is present but not used, or "amx (emulated tiles)" when a test asked for it.
const char* prefilter_kernel();

// For tests: "auto" (the default: AMX where amx_available()), "avx512bf16", or "amx-emulated"
// (the AMX driver on AmxEmulatedTiles, slow, so that its data layout runs on any AVX512-BF16
// CPU). Throws std::invalid_argument on another name.
void set_prefilter_kernel(const char* name);

// What the first pass uses now: 0 the AVX512-BF16 micro-kernel, 1 AMX tiles, 2 emulated tiles.
int prefilter_amx_mode();

// The driver of the AMX pass, generic over the tile unit so that tests can run its data
// layout on an emulation (the real unit needs AMX). Eight tiles of 16 rows x 64 bytes: four
// accumulators C (16 x 16 floats), two query tiles A (16 rows x 16 pairs) and two key tiles
// B (16 pairs x 16 keys). The unit provides zero() (C = 0), step(a0, a1, lda, b0, b1) (load
// the four operand tiles, strides in bytes, B's 64; C[i][j] += A[i] B[j]) and store(out, ldo)
// (the 32 x 32 block of C, row stride ldo bytes).
//   q      [rows][dpp] bfloat16 pairs, rows a multiple of 32, dpp a multiple of 16 (zero-padded)
//   panels [2 m][dpp][16] pairs: 2 m panels of 16 keys, as pack_keys lays them out
//   out    [rows][32 m] floats, row stride ldo: the approximate scores
template <class Unit>
void amx_block(Unit& unit, const uint32_t* q, int64_t rows, int64_t dpp, const uint32_t* panels, int64_t m,
               float* out, int64_t ldo) {
    for (int64_t i0 = 0; i0 < rows; i0 += 32)
        for (int64_t p = 0; p < m; ++p) {
            const uint32_t* b0 = panels + 2 * p * dpp * 16;
            const uint32_t* b1 = b0 + dpp * 16;
            unit.zero();
            for (int64_t c = 0; c < dpp; c += 16)
                unit.step(q + i0 * dpp + c, q + (i0 + 16) * dpp + c, dpp * 4, b0 + c * 16, b1 + c * 16);
            unit.store(out + i0 * ldo + 32 * p, ldo * 4);
        }
}

// The two products of a query's and a key's bfloat16 pair (elements 2c, then 2c + 1), exact in
// double (as in float32: 8-bit significands).
struct PairProducts {
    double lo, hi;
};
inline PairProducts pair_products(uint32_t a, uint32_t b) {
    using prefilter_detail::bf16_value;
    return {double(bf16_value(a << 16)) * bf16_value(b << 16), double(bf16_value(a)) * bf16_value(b)};
}

// An emulation of the tile unit, for tests on CPUs without AMX: eight tiles of 16 rows x 64
// bytes and TDPBF16PS's arithmetic (per pair, the product of the low halves, then of the high
// halves, added to the float32 accumulator; bfloat16 denormals are not flushed here).
struct AmxEmulatedTiles {
    uint32_t t[8][16][16] = {};
    void load(int id, const uint32_t* p, int64_t stride_bytes) {
        for (int r = 0; r < 16; ++r)
            std::memcpy(t[id][r], reinterpret_cast<const char*>(p) + r * stride_bytes, 64);
    }
    float get(int id, int r, int col) const {
        float f;
        std::memcpy(&f, &t[id][r][col], 4);
        return f;
    }
    void zero() { std::memset(t, 0, 4 * sizeof(t[0])); }
    void dp(int ci, int ai, int bi) {
        for (int m = 0; m < 16; ++m)
            for (int n = 0; n < 16; ++n) {
                float acc = get(ci, m, n);
                for (int k = 0; k < 16; ++k) {
                    const PairProducts p = pair_products(t[ai][m][k], t[bi][k][n]);
                    acc += float(p.lo);
                    acc += float(p.hi);
                }
                std::memcpy(&t[ci][m][n], &acc, 4);
            }
    }
    void step(const uint32_t* a0, const uint32_t* a1, int64_t lda, const uint32_t* b0, const uint32_t* b1) {
        load(4, a0, lda);
        load(5, a1, lda);
        load(6, b0, 64);
        load(7, b1, 64);
        dp(0, 4, 6);
        dp(1, 4, 7);
        dp(2, 5, 6);
        dp(3, 5, 7);
    }
    void store(float* out, int64_t ldo_bytes) {
        for (int r = 0; r < 16; ++r)
            for (int h = 0; h < 2; ++h) {
                std::memcpy(reinterpret_cast<char*>(out) + r * ldo_bytes + 64 * h, t[h][r], 64);
                std::memcpy(reinterpret_cast<char*>(out) + (16 + r) * ldo_bytes + 64 * h, t[2 + h][r], 64);
            }
    }
};

// amx_block on the real tiles (requires amx_available()), and on the emulated ones.
void amx_block_tiles(const uint32_t* q, int64_t rows, int64_t dpp, const uint32_t* panels, int64_t m,
                     float* out, int64_t ldo);
void amx_block_emulated(const uint32_t* q, int64_t rows, int64_t dpp, const uint32_t* panels, int64_t m,
                        float* out, int64_t ldo);

}  // namespace simattr
