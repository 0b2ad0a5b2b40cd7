// The AMX first pass's data layout (csrc/cpu/prefilter_amx.h), run on an emulation of the
// tiles so that it is checked on any CPU: amx_block must give every (query, key) pair its
// bfloat16 dot product, for row counts of one and two tile pairs, key blocks of one to three
// pairs of panels, and pair counts that need zero padding. Where the CPU has AMX, the real
// tiles are checked too, against the same reference.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/prefilter_amx.h"
#include "cpu/prefilter_bound.h"

using namespace simattr;

namespace {

// Packs rows x d queries and 32 m keys as the first pass does, runs `run` and compares every
// score with the double-precision dot product of the bfloat16 values.
template <class Run>
void check_layout(int64_t rows, int64_t m, int64_t d, Run&& run) {
    using prefilter_detail::pack_pairs;
    const int64_t dp = (d + 1) / 2, dpp = (dp + 15) / 16 * 16, nk = 32 * m;
    std::mt19937 gen(uint32_t(rows * 1000 + m * 10 + d));
    std::normal_distribution<float> normal;
    std::vector<float> q(size_t(rows * d)), x(size_t(nk * d));
    for (auto& v : q) v = normal(gen);
    for (auto& v : x) v = normal(gen);
    std::vector<uint32_t> qp(size_t(rows * dpp), 0u), kp(size_t(nk * dpp), 0u);
    for (int64_t r = 0; r < rows; ++r) pack_pairs(q.data() + r * d, d, qp.data() + r * dpp, 1);
    for (int64_t r = 0; r < nk; ++r)
        pack_pairs(x.data() + r * d, d, kp.data() + (r / 16) * dpp * 16 + r % 16, 16);
    const int64_t ldo = nk + 5;  // a row stride wider than the block
    std::vector<float> out(size_t(rows * ldo), NAN);
    run(qp.data(), rows, dpp, kp.data(), m, out.data(), ldo);
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < nk; ++j) {
            double dot = 0, mag = 0;
            for (int64_t c = 0; c < dp; ++c) {
                const PairProducts p =
                    pair_products(qp[size_t(i * dpp + c)], kp[size_t((j / 16) * dpp * 16 + c * 16 + j % 16)]);
                dot += p.lo + p.hi;
                mag += std::fabs(p.lo) + std::fabs(p.hi);
            }
            CHECK(std::fabs(double(out[size_t(i * ldo + j)]) - dot) <=
                  2 * (d + 1) * std::ldexp(1.0, -24) * mag);
        }
}

}  // namespace

int main() {
    for (int64_t rows : {32, 64})
        for (int64_t m : {1, 3})
            for (int64_t d : {1, 33, 64, 97}) {
                check_layout(rows, m, d,
                             [](const uint32_t* q, int64_t r, int64_t dpp, const uint32_t* k, int64_t mm,
                                float* o, int64_t ldo) {
                                 AmxEmulatedTiles unit;
                                 amx_block(unit, q, r, dpp, k, mm, o, ldo);
                             });
                if (amx_available()) check_layout(rows, m, d, amx_block_tiles);
            }
    std::printf("test_prefilter_amx: ok (emulated tiles; real tiles: %s)\n", prefilter_kernel());
    return 0;
}
