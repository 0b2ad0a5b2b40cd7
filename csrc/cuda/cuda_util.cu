#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

#include "cuda/cuda_util.h"

namespace simattr::cuda {

namespace {
thread_local std::string g_last_error;

// A failure seen where throwing was impossible (a destructor's cudaFree): reported by the
// next check() on any thread.
std::mutex g_deferred_lock;
std::string g_deferred;

bool debug_mode() {
    static const bool on = [] {
        const char* v = std::getenv("SIMATTR_CUDA_DEBUG");
        return v != nullptr && std::strcmp(v, "") != 0 && std::strcmp(v, "0") != 0;
    }();
    return on;
}

cudaStream_t as_stream(void* s) {
    return static_cast<cudaStream_t>(s);
}
}  // namespace

void check(int err, const char* what) {
    std::string deferred;
    {
        std::lock_guard<std::mutex> guard(g_deferred_lock);
        deferred.swap(g_deferred);
    }
    if (!deferred.empty()) throw std::runtime_error(deferred);
    if (err != cudaSuccess) {
        throw std::runtime_error(std::string(what) + ": " +
                                 cudaGetErrorString(static_cast<cudaError_t>(err)));
    }
}

void check_launch(void* stream, const char* what) {
    check(cudaGetLastError(), what);
    if (debug_mode()) check(cudaStreamSynchronize(as_stream(stream)), what);
}

int device_count() {
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        g_last_error = cudaGetErrorString(err);
        cudaGetLastError();  // clear the sticky-free error so later calls start clean
        return 0;
    }
    return n;
}

std::string last_error() {
    return g_last_error;
}

int pointer_device(const void* p) {
    cudaPointerAttributes attr{};
    check(cudaPointerGetAttributes(&attr, p), "cudaPointerGetAttributes");
    return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged ? attr.device : -1;
}

DeviceGuard::DeviceGuard(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (device != previous_) check(cudaSetDevice(device), "cudaSetDevice");
}

DeviceGuard::~DeviceGuard() {
    if (previous_ >= 0) cudaSetDevice(previous_);
}

void wait_stream(uintptr_t stream) {
    if (stream == 0) return;  // not allowed by the protocol; nothing to wait for
    cudaStream_t s = stream == 1   ? cudaStreamLegacy
                     : stream == 2 ? cudaStreamPerThread
                                   : reinterpret_cast<cudaStream_t>(stream);
    check(cudaStreamSynchronize(s), "waiting for the input's stream");
}

Stream::Stream() {
    cudaStream_t s = nullptr;
    check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    s_ = s;
}

Stream::~Stream() {
    if (s_ != nullptr) cudaStreamDestroy(as_stream(s_));
}

void Stream::synchronize() const {
    check(cudaStreamSynchronize(as_stream(s_)), "cudaStreamSynchronize");
}

void* device_alloc(size_t bytes) {
    void* p = nullptr;
    if (bytes == 0) bytes = 1;
    check(cudaMalloc(&p, bytes), "cudaMalloc");
    return p;
}

void device_free(void* p) {
    check(cudaFree(p), "cudaFree");
}

void device_free_noexcept(void* p) noexcept {
    const cudaError_t err = cudaFree(p);
    if (err != cudaSuccess) {
        std::lock_guard<std::mutex> guard(g_deferred_lock);
        if (g_deferred.empty())
            g_deferred = std::string("cudaFree (in a destructor): ") + cudaGetErrorString(err);
    }
}

void copy_to_device(void* dst, const void* src, size_t bytes) {
    check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy host->device");
    // From pageable memory cudaMemcpy may return before the DMA lands; our kernels run on
    // non-blocking streams that do not wait for the legacy stream, so wait here.
    check(cudaStreamSynchronize(cudaStreamLegacy), "cudaMemcpy host->device (sync)");
}

void copy_to_host_async(void* dst, const void* src, size_t bytes, void* stream) {
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, as_stream(stream)),
          "cudaMemcpyAsync device->host");
}

void memset_async(void* p, int value, size_t bytes, void* stream) {
    check(cudaMemsetAsync(p, value, bytes, as_stream(stream)), "cudaMemsetAsync");
}

}  // namespace simattr::cuda
