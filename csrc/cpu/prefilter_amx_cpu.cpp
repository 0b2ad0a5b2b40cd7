// The AMX tile unit of the bfloat16 first pass (cpu/prefilter_amx.h), its availability (CPU
// flags, the OS's permission, a self-check against the AVX512-BF16 micro-kernel) and which
// kernel runs.
#include "cpu/prefilter_amx.h"

#include <immintrin.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "cpu/prefilter.h"
#include "cpu/prefilter_bound.h"
#include "cpu/prefilter_kernels.h"

namespace simattr {

namespace {

using prefilter_detail::pack_pairs;

// Palette 1, tiles 0-7 all 16 rows x 64 bytes (tmm0-3: C, tmm4-5: A, tmm6-7: B).
struct alignas(64) TileConfig {
    uint8_t palette = 1, start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};
    uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};

// The real tiles. (The intrinsics are inline assembly naming tile registers literally.)
struct AmxTiles {
    __attribute__((target("amx-tile"))) void zero() {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    __attribute__((target("amx-tile,amx-bf16"))) void step(const uint32_t* a0, const uint32_t* a1,
                                                           int64_t lda, const uint32_t* b0,
                                                           const uint32_t* b1) {
        _tile_loadd(4, a0, lda);
        _tile_loadd(5, a1, lda);
        _tile_loadd(6, b0, 64);
        _tile_loadd(7, b1, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    __attribute__((target("amx-tile"))) void store(float* out, int64_t ldo) {
        _tile_stored(0, out, ldo);
        _tile_stored(1, out + 16, ldo);
        _tile_stored(2, reinterpret_cast<char*>(out) + 16 * ldo, ldo);
        _tile_stored(3, reinterpret_cast<char*>(out + 16) + 16 * ldo, ldo);
    }
};

const char* g_kernel = "avx512bf16";
std::atomic<int> g_forced{-1};  // set_prefilter_kernel: -1 auto, else the mode

// AMX against bf16_micro on 32 queries x 32 keys x 64 features (fixed seed): both sum the
// same exact products in float32, so they may differ only by the roundings of two sums,
// 2 g(d') sum |q~_c x~_c| (cpu/prefilter_bound.h). A layout or configuration error is far off.
bool self_check() {
    constexpr int64_t d = 64, dp = d / 2;
    std::mt19937 gen(11);
    std::normal_distribution<float> normal;
    std::vector<float> q(32 * d), x(32 * d);
    for (auto& v : q) v = normal(gen);
    for (auto& v : x) v = normal(gen);
    std::vector<uint32_t> qp(32 * dp), kp(2 * dp * 16);
    for (int64_t r = 0; r < 32; ++r) pack_pairs(q.data() + r * d, d, qp.data() + r * dp, 1);
    for (int64_t r = 0; r < 32; ++r)
        pack_pairs(x.data() + r * d, d, kp.data() + (r / 16) * dp * 16 + r % 16, 16);
    std::vector<float> ref(32 * 32), got(32 * 32, NAN);
    for (int64_t i = 0; i < 32; i += 8)
        bf16_micro(qp.data() + i * dp, dp, kp.data(), ref.data() + i * 32, 32);
    amx_block_tiles(qp.data(), 32, dp, kp.data(), 1, got.data(), 32);
    for (int64_t i = 0; i < 32; ++i)
        for (int64_t j = 0; j < 32; ++j) {
            double mag = 0;
            for (int64_t c = 0; c < dp; ++c) {
                const PairProducts p =
                    pair_products(qp[i * dp + c], kp[(j / 16) * dp * 16 + c * 16 + j % 16]);
                mag += std::fabs(p.lo) + std::fabs(p.hi);
            }
            const double tol = 2 * 2 * (d + 1) * std::ldexp(1.0, -24) * mag + std::ldexp(1.0, -120);
            if (!(std::fabs(double(got[i * 32 + j]) - double(ref[i * 32 + j])) <= tol)) return false;
        }
    return true;
}

}  // namespace

bool amx_available() {
    static const bool ok = [] {
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
        if (!bf16_prefilter_available() || !__builtin_cpu_supports("amx-tile") ||
            !__builtin_cpu_supports("amx-bf16"))
            return false;
        // Linux hands out the 8 KiB of tile state only on request (ARCH_REQ_XCOMP_PERM for
        // XFEATURE_XTILEDATA); without it the first tile instruction faults.
        constexpr long kReqXcompPerm = 0x1023, kXtileData = 18;
        if (syscall(SYS_arch_prctl, kReqXcompPerm, kXtileData) != 0) {
            g_kernel = "avx512bf16 (AMX present, the kernel refused the tile state)";
            return false;
        }
        if (!self_check()) {
            g_kernel = "avx512bf16 (AMX present, its self-check failed)";
            return false;
        }
        return true;
#else
        return false;
#endif
    }();
    return ok;
}

const char* prefilter_kernel() {
    switch (prefilter_amx_mode()) {
        case 2:
            return "amx (emulated tiles)";
        case 1:
            return "amx";
        default:  // forced off where AMX works, or g_kernel's reason where it does not
            return amx_available() ? "avx512bf16" : g_kernel;
    }
}

void set_prefilter_kernel(const char* name) {
    const std::string n(name);
    if (n == "auto")
        g_forced = -1;
    else if (n == "avx512bf16")
        g_forced = 0;
    else if (n == "amx-emulated")
        g_forced = 2;
    else
        throw std::invalid_argument(
            "prefilter kernel: expected one of auto, avx512bf16, amx-emulated; got '" + n + "'");
}

int prefilter_amx_mode() {
    const int forced = g_forced.load();
    return forced >= 0 ? forced : amx_available() ? 1 : 0;
}

void amx_block_emulated(const uint32_t* q, int64_t rows, int64_t dpp, const uint32_t* panels, int64_t m,
                        float* out, int64_t ldo) {
    AmxEmulatedTiles unit;
    amx_block(unit, q, rows, dpp, panels, m, out, ldo);
}

__attribute__((target("amx-tile,amx-bf16"))) void amx_block_tiles(const uint32_t* q, int64_t rows,
                                                                  int64_t dpp, const uint32_t* panels,
                                                                  int64_t m, float* out, int64_t ldo) {
    // The configuration is per thread, and cheap: load it on every call.
    TileConfig cfg;
    _tile_loadconfig(&cfg);
    AmxTiles unit;
    amx_block(unit, q, rows, dpp, panels, m, out, ldo);
    _tile_release();
}

}  // namespace simattr
