#include "cpu/scores.h"

#include <algorithm>
#include <vector>

#include "common/parallel.h"
#include "common/simd.h"

namespace simattr {

namespace {

typedef float v16 __attribute__((vector_size(64)));  // 16 floats: one AVX-512 or two AVX2 registers

}  // namespace

// Keys come packed in panels [d][16] so each step is one vector load; `acc += q[c] * p` is
// contracted to one fused multiply-add in the AVX-512 and FMA clones.
SIMATTR_CLONES_FMA void micro_tile(const float* q, int64_t ldq, const float* panel, int64_t d, float* out,
                                   int64_t ldo) {
    v16 acc0 = {}, acc1 = {}, acc2 = {}, acc3 = {}, acc4 = {}, acc5 = {}, acc6 = {}, acc7 = {};
    const float *q0 = q, *q1 = q + ldq, *q2 = q + 2 * ldq, *q3 = q + 3 * ldq, *q4 = q + 4 * ldq,
                *q5 = q + 5 * ldq, *q6 = q + 6 * ldq, *q7 = q + 7 * ldq;
    for (int64_t c = 0; c < d; ++c) {
        v16 p;
        __builtin_memcpy(&p, panel + c * kNR, sizeof(p));
        acc0 += q0[c] * p;
        acc1 += q1[c] * p;
        acc2 += q2[c] * p;
        acc3 += q3[c] * p;
        acc4 += q4[c] * p;
        acc5 += q5[c] * p;
        acc6 += q6[c] * p;
        acc7 += q7[c] * p;
    }
    const v16 accs[kMR] = {acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7};
    for (int i = 0; i < kMR; ++i) __builtin_memcpy(out + i * ldo, &accs[i], sizeof(v16));
}

void pack_panels(const float* keys, int64_t ldk, int64_t n, int64_t d, float* dst, int n_threads) {
    // One task a panel: it reads its 16 rows side by side and writes its [d][16] block in
    // order (zero lanes past the last key), so dst needs no clearing first.
    parallel_for((n + kNR - 1) / kNR, n_threads, [&](int64_t p) {
        float* out = dst + p * kNR * d;
        const int64_t r0 = p * kNR, rows = std::min<int64_t>(kNR, n - r0);
        for (int64_t c = 0; c < d; ++c) {
            for (int64_t i = 0; i < rows; ++i) out[c * kNR + i] = keys[(r0 + i) * ldk + c];
            for (int64_t i = rows; i < kNR; ++i) out[c * kNR + i] = 0.f;
        }
    });
}

void scores_packed(const float* a, int64_t lda, int64_t m, const float* panels, int64_t n, int64_t d,
                   float* out, int64_t ldo, int n_threads) {
    if (m == 0 || n == 0) return;
    const int64_t n_panels = (n + kNR - 1) / kNR, groups = (m + kMR - 1) / kMR;
    // A short last row group is copied once, zero-padded to 8 rows [8, d], for every panel.
    const int64_t tail_rows = m % kMR;
    std::vector<float> tail(tail_rows ? size_t(kMR * d) : 0, 0.f);
    for (int64_t i = 0; i < tail_rows; ++i) {
        const float* src = a + (m - tail_rows + i) * lda;
        std::copy(src, src + d, tail.begin() + i * d);
    }
    // Runs of 8 panels (128 keys): each panel is read from cache by every row group in turn.
    constexpr int64_t kRun = 8;
    parallel_for((n_panels + kRun - 1) / kRun, resolve_threads(n_threads), [&](int64_t run) {
        float tile[kMR * kNR];
        for (int64_t p = run * kRun; p < std::min(n_panels, (run + 1) * kRun); ++p) {
            const int64_t c0 = p * kNR, cols = std::min<int64_t>(kNR, n - c0);
            for (int64_t g = 0; g < groups; ++g) {
                const int64_t r0 = g * kMR, nr = std::min<int64_t>(kMR, m - r0);
                const bool short_group = nr < kMR;
                const float* q = short_group ? tail.data() : a + r0 * lda;
                const int64_t ldq = short_group ? d : lda;
                if (!short_group && cols == kNR) {
                    micro_tile(q, ldq, panels + p * kNR * d, d, out + r0 * ldo + c0, ldo);
                    continue;
                }
                micro_tile(q, ldq, panels + p * kNR * d, d, tile, kNR);
                for (int64_t i = 0; i < nr; ++i)
                    std::copy(tile + i * kNR, tile + i * kNR + cols, out + (r0 + i) * ldo + c0);
            }
        }
    });
}

}  // namespace simattr
