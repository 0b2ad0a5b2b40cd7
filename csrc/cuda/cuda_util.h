// CUDA helpers for the core: error checking (errors become std::runtime_error carrying the
// CUDA error string, never an abort), a device guard, an owned stream, and an owning device
// buffer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace simattr::cuda {

// Throws std::runtime_error("<what>: <CUDA error string>") when err != cudaSuccess. Also
// reports a failure recorded earlier where throwing was impossible (a destructor's cudaFree).
void check(int err, const char* what);

// After a kernel launch on `stream`: the launch error, and with SIMATTR_CUDA_DEBUG=1 the
// kernel's completion status too (the stream is synchronised after every launch), so that an
// error is reported by the launch that caused it.
void check_launch(void* stream, const char* what);

// Number of usable devices; 0 (and last_error() set) when there is no device or driver.
int device_count();
std::string last_error();

// The device that owns a device pointer (-1 for host memory).
int pointer_device(const void* p);

// Makes `device` current for its lifetime and restores the previous one after.
class DeviceGuard {
public:
    explicit DeviceGuard(int device);
    ~DeviceGuard();
    DeviceGuard(const DeviceGuard&) = delete;
    DeviceGuard& operator=(const DeviceGuard&) = delete;

private:
    int previous_ = -1;
};

// Waits for the work queued on a producer's stream, as __cuda_array_interface__ v3 asks of
// a consumer: 1 is the legacy default stream, 2 the per-thread default stream, else a handle.
void wait_stream(uintptr_t stream);

// A non-blocking stream of our own (never the legacy default stream), destroyed with it.
class Stream {
public:
    Stream();
    ~Stream();
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    void* get() const { return s_; }
    void synchronize() const;

private:
    void* s_ = nullptr;
};

// Owning, uninitialised device allocation of n elements of T.
template <class T>
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t n) { reset(n); }
    ~DeviceBuffer() { release_noexcept(); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_) {
        o.p_ = nullptr;
        o.n_ = 0;
    }

    void reset(size_t n);  // reallocates when n grows (contents are not kept)
    T* get() const { return p_; }
    size_t size() const { return n_; }

private:
    void release_noexcept() noexcept;
    T* p_ = nullptr;
    size_t n_ = 0;
};

void* device_alloc(size_t bytes);
void device_free(void* p);                                      // checked: throws on failure
void device_free_noexcept(void* p) noexcept;                    // records a failure for the next check()
void copy_to_device(void* dst, const void* src, size_t bytes);  // synchronous, complete on return
void copy_to_host_async(void* dst, const void* src, size_t bytes, void* stream);
void memset_async(void* p, int value, size_t bytes, void* stream);

template <class T>
void DeviceBuffer<T>::reset(size_t n) {
    if (n <= n_ && p_ != nullptr) return;
    if (p_ != nullptr) device_free(p_);
    p_ = nullptr;
    n_ = 0;
    p_ = static_cast<T*>(device_alloc(n * sizeof(T)));
    n_ = n;
}

template <class T>
void DeviceBuffer<T>::release_noexcept() noexcept {
    if (p_ != nullptr) device_free_noexcept(p_);
    p_ = nullptr;
    n_ = 0;
}

}  // namespace simattr::cuda
