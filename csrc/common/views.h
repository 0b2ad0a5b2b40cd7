// The element types and metrics the core accepts. The core never owns input memory: callers
// pass raw pointers with documented shapes (row-major, a row stride in elements).
#pragma once
#include <cstdint>

namespace simattr {

enum class DType : int { F32 = 0, F16 = 1 };

// Metrics. All are turned into "larger is better" scores inside the kernels:
// cosine and ip as is, l2 as 2 q.x - |x|^2 (the |q|^2 term is added back by the caller).
enum class Metric : int { Cosine = 0, IP = 1, L2 = 2 };

}  // namespace simattr
