// Minimal parallel loop over [0, n) with OpenMP when available, serial otherwise.
// n_threads <= 0 means "all available".
#pragma once
#include <cstdint>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace simattr {

inline int resolve_threads(int n_threads) {
#ifdef _OPENMP
    return n_threads > 0 ? n_threads : omp_get_max_threads();
#else
    (void)n_threads;
    return 1;
#endif
}

template <class F>
void parallel_for(int64_t n, int n_threads, F&& body) {
#ifdef _OPENMP
    const int nt = resolve_threads(n_threads);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1 && n > 1)
    for (int64_t i = 0; i < n; ++i) body(i);
#else
    (void)n_threads;
    for (int64_t i = 0; i < n; ++i) body(i);
#endif
}

}  // namespace simattr
