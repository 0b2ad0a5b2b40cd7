// CUDA exact top-k: a tiled matrix product fused with per-query candidate filtering, and a
// segmented sort that keeps each query's best k between blocks of keys.
//
// Candidates are packed into one uint64 (packed_key.h, shared with the CPU), so ascending
// keys mean "best first, ties to the lower id". Key ids must therefore be < 2^32.
#pragma once
#include <cstdint>

#include "common/views.h"
#include "cuda/cuda_util.h"

namespace simattr::cuda {

class TopkAccumulatorCuda {
public:
    // nq rows, best k each; every push offers at most max_cols candidates per row.
    // Device memory: about nq * (k + max_cols) * 16 bytes (a buffer and its sorted copy).
    TopkAccumulatorCuda(int64_t nq, int64_t k, int64_t max_cols);

    int64_t rows() const { return nq_; }
    int64_t k() const { return k_; }
    int64_t max_cols() const { return max_cols_; }
    // Every kernel of this accumulator (and of esvm_topk on it) runs on this stream: our own,
    // non-blocking, never the legacy default stream.
    void* stream() const { return stream_.get(); }

    // Scores queries [nq, d] against keys [nb, d] (device, float32 or float16, row-major,
    // contiguous) and offers them to rows 0..nq with ids id0 + c. nb <= max_cols.
    // Metric::Cosine normalises inside (zero rows score 0); L2 offers 2 q.x - |x|^2.
    // query_labels [nq] / key_labels [nb] (device int64, both or neither): only equal
    // labels are offered.
    void topk(const void* queries, DType qtype, const void* keys, DType ktype, int64_t nb, int64_t d,
              int64_t id0, Metric metric, const int64_t* query_labels, const int64_t* key_labels);

    // Offers precomputed scores [nrows, ncols] (device float32, row-major) to rows
    // row0..row0+nrows with ids ids[c] (device int64). ncols <= max_cols.
    void push_scores(const float* scores, int64_t row0, int64_t nrows, int64_t ncols, const int64_t* ids);

    // Best k per row, best first, into host buffers [nq, k]; padding score NaN, id -1.
    void finalize(float* host_scores, int64_t* host_ids);

private:
    void compact();

    int64_t nq_, k_, max_cols_, cap_;
    Stream stream_;
    DeviceBuffer<unsigned long long> buf_, sorted_, thresh_;
    DeviceBuffer<unsigned int> count_;
    DeviceBuffer<int> begin_, end_;
    DeviceBuffer<double> qnorm_, knorm_;  // squared norms in float64, as the CPU computes them
    DeviceBuffer<char> temp_;
};

}  // namespace simattr::cuda
