// Minimal parallel loop over [0, n) with OpenMP when available, serial otherwise.
// n_threads <= 0 means "all available".
//
// An exception thrown by the body on a worker thread must not escape the OpenMP region (that
// calls std::terminate and kills the Python process): the first one is captured, the other
// iterations are skipped, and it is rethrown on the calling thread once the region ends.
#pragma once
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
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
    if (nt <= 1 || n <= 1) {  // no team to start (callers nest one-thread loops in parallel ones)
        for (int64_t i = 0; i < n; ++i) body(i);
        return;
    }
    std::exception_ptr error;
    std::atomic<bool> failed{false};
    std::mutex lock;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t i = 0; i < n; ++i) {
        if (failed.load(std::memory_order_relaxed)) continue;
        try {
            body(i);
        } catch (...) {
            std::lock_guard<std::mutex> guard(lock);
            if (!error) error = std::current_exception();
            failed.store(true, std::memory_order_relaxed);
        }
    }
    if (error) std::rethrow_exception(error);
#else
    (void)n_threads;
    for (int64_t i = 0; i < n; ++i) body(i);
#endif
}

}  // namespace simattr
