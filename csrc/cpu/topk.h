// Exact top-k by score, streamed over blocks of keys.
//
// Ordering everywhere: a candidate (s1, i1) is better than (s2, i2) when s1 > s2, or when
// s1 == s2 and i1 < i2 (ties go to the lower key index; -0 equals +0), so results are
// deterministic whatever the block sizes, thread counts and arrival order.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "common/packed_key.h"
#include "common/views.h"

namespace simattr {

// Running top-k of `nq` rows. Each row keeps a reservoir of up to 2k candidates; when it
// fills, it is cut down to (about) its best k and the cut becomes a threshold that rejects
// most later scores with one comparison (amortised O(1) per score, as FAISS's reservoir).
// Memory: nq * 2k * 8 bytes. Key ids must be < 2^32.
class TopkAccumulator {
public:
    TopkAccumulator(int64_t nq, int64_t k);

    int64_t rows() const { return nq_; }
    int64_t k() const { return k_; }

    // Offers scores[r, c] (row-major, row stride ld) for accumulator rows row0 .. row0+nrows
    // with key ids ids[c], c < ncols. Rows are processed in parallel on n_threads threads.
    void push(int64_t row0, int64_t nrows, const float* scores, int64_t ld, const int64_t* ids, int64_t ncols,
              int n_threads);

    // Writes the best k per row, best first, into out_scores / out_ids (row-major, k per
    // row): accumulator row r goes to output row row_map[r], or r when row_map is null.
    // Rows with fewer than k candidates are padded with score NaN and id -1.
    void finalize(float* out_scores, int64_t* out_ids, const int64_t* row_map, int n_threads);

    // A score that at least k of the candidates offered to `row` so far reach (-inf before
    // k have been offered): a lower bound of the row's final k-th best score.
    float threshold(int64_t row) const { return worst_score_[row]; }

    // The row's k-th best score so far (-inf before k have been offered), the tightest such
    // bound: cuts the row's reservoir to its k best first (one selection). Not thread-safe
    // for the same row.
    float kth_score(int64_t row);

    // Scratch score tile reused across calls (saves re-faulting fresh pages every block).
    float* scratch(size_t n_floats) {
        if (tile_.size() < n_floats) tile_.resize(n_floats);
        return tile_.data();
    }

private:
    void compact(int64_t row);
    void cut_exact(int64_t row);
    bool compact_sampled(int64_t row);
    void push_row(int64_t row, const float* s, const int64_t* ids, int64_t ncols);
    float block_floor(const float* s, int64_t n, float above, int64_t pass) const;

    int64_t nq_, k_, cap_;
    std::unique_ptr<Key[]> buf_;      // [nq, cap]; left uninitialised, pages fault in on use
    std::vector<int64_t> count_;      // [nq]
    std::vector<Key> worst_;          // [nq] admission threshold: a candidate must pack below it
    std::vector<float> worst_score_;  // [nq] its score, for the vectorised pre-filter
    std::vector<float> tile_;
};

// The bfloat16 first pass of cpu/prefilter.h (the same result, fewer float32 products), used
// only where the CPU has it and the keys outnumber k well: Off never; On always; Auto on the
// first query tiles, then on the rest only if they left few candidates (at most
// kAutoDensity of the pairs: where re-scoring the candidates costs less than the first pass
// saves; measured on an AVX512-BF16 CPU without AMX against the float32 path of this version:
// par at 5.1% of the keys re-scored, 0.9x at 6.1%, 1.1-1.3x at 3-4.6%: benchmarks/README.md).
enum class Prefilter { Off = 0, On = 1, Auto = 2 };
constexpr double kAutoDensity = 0.05;

// Scores one block of keys against all queries and offers them to `acc`:
//   queries [nq, d] float32 (row stride ldq), keys [nb, d] float32 (row stride ldk),
//   ids [nb] global key indices, key_sq_norms [nb] (used by L2 only, else may be null).
// Metric::IP and Metric::Cosine score q.x (cosine expects normalised rows);
// Metric::L2 scores 2 q.x - |x|^2, which ranks like -|q - x|^2. The scores come from our own
// micro-kernel, whose result for a pair does not depend on where the pair sits (unlike a BLAS
// GEMM's), so results do not depend on threads, blocks or batches.
// Accumulator rows row0 .. row0+nq receive the scores. Uses a bounded scratch tile.
// `prefilter` chooses the first pass above.
void topk(const float* queries, int64_t ldq, int64_t nq, const float* keys, int64_t ldk, int64_t nb,
          int64_t d, const int64_t* ids, const float* key_sq_norms, Metric metric, TopkAccumulator& acc,
          int64_t row0, int n_threads, Prefilter prefilter = Prefilter::Off);

}  // namespace simattr
