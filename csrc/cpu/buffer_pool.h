// Recycled double buffers for the exemplar SVMs of one call (their Gram matrices and Newton
// factors, up to a few MiB each). A buffer freed by one SVM serves a later one: through
// malloc, blocks this large are mmap-ed and munmap-ed one by one, and every fresh page costs
// a fault and the kernel's zeroing on first touch (the main job: 556k faults a run, 314k with
// the pool, which made it 6-9% faster on this VM).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

namespace simattr {

class BufferPool {
public:
    // Holds at most max_bytes of free buffers; beyond that, released ones are freed.
    explicit BufferPool(size_t max_bytes = size_t(1) << 30) : max_bytes_(max_bytes) {}
    BufferPool(const BufferPool&) = delete;
    BufferPool& operator=(const BufferPool&) = delete;
    ~BufferPool() {
        for (auto& [cap, p] : free_) delete[] p;
    }

    // A buffer of at least n doubles, uninitialised; *cap receives its capacity. A pooled
    // buffer serves a request of at least half its size, so small ones do not pin large ones.
    double* acquire(size_t n, size_t* cap) {
        {
            std::lock_guard<std::mutex> lock(m_);
            auto it = free_.lower_bound(n);
            if (it != free_.end() && it->first / 2 <= n) {
                *cap = it->first;
                double* p = it->second;
                bytes_ -= it->first * sizeof(double);
                free_.erase(it);
                return p;
            }
        }
        *cap = n;
        return new double[n];
    }

    // Bytes of free buffers held (for tests).
    size_t held() {
        std::lock_guard<std::mutex> lock(m_);
        return bytes_;
    }

    // Takes back a buffer from acquire (freed instead once the pool would exceed max_bytes).
    void release(double* p, size_t cap) {
        {
            std::lock_guard<std::mutex> lock(m_);
            if (bytes_ + cap * sizeof(double) <= max_bytes_) {
                free_.emplace(cap, p);
                bytes_ += cap * sizeof(double);
                return;
            }
        }
        delete[] p;
    }

private:
    const size_t max_bytes_;
    std::mutex m_;
    std::multimap<size_t, double*> free_;  // capacity -> buffer
    size_t bytes_ = 0;                     // held in free_
};

// A growable array of doubles drawn from a BufferPool (or from new[] without one). Unlike
// std::vector, growing does not zero the new entries: callers write them first.
class PooledDoubles {
public:
    explicit PooledDoubles(BufferPool* pool = nullptr) : pool_(pool) {}
    PooledDoubles(const PooledDoubles&) = delete;
    PooledDoubles& operator=(const PooledDoubles&) = delete;
    PooledDoubles(PooledDoubles&& o) noexcept { swap(o); }
    PooledDoubles& operator=(PooledDoubles&& o) noexcept {
        PooledDoubles(std::move(o)).swap(*this);
        return *this;
    }
    ~PooledDoubles() { free(); }

    BufferPool* pool() const { return pool_; }
    double* data() { return p_; }
    const double* data() const { return p_; }
    size_t size() const { return n_; }
    double& operator[](size_t i) { return p_[i]; }
    const double& operator[](size_t i) const { return p_[i]; }

    // Size n, keeping the first min(n, size()) entries (the rest uninitialised); capacity
    // at least doubles when it must grow.
    void resize(size_t n) {
        if (n > cap_) {
            size_t cap = 0;
            double* p = acquire(std::max(n, 2 * cap_), &cap);
            if (n_ > 0) std::memcpy(p, p_, n_ * sizeof(double));
            free();
            p_ = p;
            cap_ = cap;
        }
        n_ = n;
    }
    // Size n, contents not kept (all uninitialised).
    void reset(size_t n) {
        if (n > cap_) {
            free();
            p_ = acquire(n, &cap_);
        }
        n_ = n;
    }
    // Size 0; the buffer goes back to the pool.
    void release() { free(); }
    void swap(PooledDoubles& o) noexcept {
        std::swap(pool_, o.pool_);
        std::swap(p_, o.p_);
        std::swap(n_, o.n_);
        std::swap(cap_, o.cap_);
    }

private:
    double* acquire(size_t n, size_t* cap) {
        if (pool_ != nullptr) return pool_->acquire(n, cap);
        *cap = n;
        return new double[n];
    }
    void free() {
        if (p_ != nullptr) {
            if (pool_ != nullptr)
                pool_->release(p_, cap_);
            else
                delete[] p_;
        }
        p_ = nullptr;
        n_ = cap_ = 0;
    }
    BufferPool* pool_ = nullptr;
    double* p_ = nullptr;
    size_t n_ = 0, cap_ = 0;
};

}  // namespace simattr
