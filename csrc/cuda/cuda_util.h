// CUDA helpers for the core: error checking (errors become std::runtime_error carrying the
// CUDA error string, never an abort) and an owning device buffer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace simattr::cuda {

// Throws std::runtime_error("<what>: <CUDA error string>") when err != cudaSuccess.
void check(int err, const char* what);

// Number of usable devices; 0 (and last_error() set) when there is no device or driver.
int device_count();
std::string last_error();

// Owning, uninitialised device allocation of n elements of T.
template <class T>
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t n) { reset(n); }
    ~DeviceBuffer() { release(); }
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
    void release();
    T* p_ = nullptr;
    size_t n_ = 0;
};

void* device_alloc(size_t bytes);
void device_free(void* p);
void copy_to_device(void* dst, const void* src, size_t bytes);
void copy_to_host(void* dst, const void* src, size_t bytes);

template <class T>
void DeviceBuffer<T>::reset(size_t n) {
    if (n <= n_ && p_ != nullptr) return;
    release();
    p_ = static_cast<T*>(device_alloc(n * sizeof(T)));
    n_ = n;
}

template <class T>
void DeviceBuffer<T>::release() {
    if (p_ != nullptr) device_free(p_);
    p_ = nullptr;
    n_ = 0;
}

}  // namespace simattr::cuda
