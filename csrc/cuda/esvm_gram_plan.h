// Which classes the CUDA exemplar-SVM solver takes in Gram form, and where their Gram
// matrices go: plain host C++ (no CUDA), so it is unit-tested without a GPU.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

namespace simattr::cuda {

// Gram form when the pool is small against d: a coordinate visit then reads one margin and an
// update adds one row of n + 1, where the primal form reads (and on update writes) two rows
// of d. The margins must fit one warp's shared memory on every GPU since Turing (64 KiB:
// 8,192 slots). `form` overrides the choice (SIMATTR_CUDA_ESVM=primal|gram).
constexpr int64_t kGramMaxSlots = 8192;
enum class EsvmForm : int { Auto = 0, Primal = 1, Gram = 2 };
inline bool esvm_uses_gram(int64_t n, int64_t d, EsvmForm form) {
    if (form == EsvmForm::Primal || n + 1 > kGramMaxSlots) return false;
    return form == EsvmForm::Gram || n + 1 <= 2 * d;
}

// For a batch of m queries (host_query_class [m], grouped by class) over classes with key
// offsets [n_classes + 1]: gram[c] = 1 for the classes solved in Gram form that have queries,
// kx_off[c] where class c's [n_c, n_c] matrix starts in one buffer of kx_total doubles, and
// slots = the largest n_c + 1 among them (0: no class in Gram form).
struct GramPlan {
    std::vector<uint8_t> gram;
    std::vector<int64_t> kx_off;
    int64_t kx_total = 0, slots = 0;
};

inline GramPlan plan_gram(int64_t m, const int32_t* host_query_class, const int64_t* host_key_offsets,
                          int64_t n_classes, int64_t d, EsvmForm form) {
    GramPlan p;
    p.gram.assign(size_t(n_classes), 0);
    p.kx_off.assign(size_t(n_classes), 0);
    for (int64_t j = 0; j < m; ++j) {
        const int32_t c = host_query_class[j];
        const int64_t n = host_key_offsets[c + 1] - host_key_offsets[c];
        if (p.gram[c] || !esvm_uses_gram(n, d, form)) continue;
        p.gram[c] = 1;
        p.kx_off[c] = p.kx_total;
        p.kx_total += n * n;
        p.slots = std::max(p.slots, n + 1);
    }
    return p;
}

}  // namespace simattr::cuda
