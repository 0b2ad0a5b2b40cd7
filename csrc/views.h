// Non-owning array views and the element types the core accepts.
// The core never owns input memory: callers pass pointers with documented shapes.
#pragma once
#include <cstdint>

namespace simattr {

enum class DType : int { F32 = 0, F16 = 1 };

// Row-major matrix view: element (r, c) lives at data + r * stride + c (in elements).
// rows x cols, stride >= cols.
struct MatrixView {
    const void* data = nullptr;
    DType dtype = DType::F32;
    int64_t rows = 0;
    int64_t cols = 0;
    int64_t stride = 0;

    const float* f32_row(int64_t r) const {
        return static_cast<const float*>(data) + r * stride;
    }
};

// Metrics. All are turned into "larger is better" scores inside the kernels:
// cosine and ip as is, l2 as 2 q.x - |x|^2 (the |q|^2 term is added back by the caller).
enum class Metric : int { Cosine = 0, IP = 1, L2 = 2 };

}  // namespace simattr
