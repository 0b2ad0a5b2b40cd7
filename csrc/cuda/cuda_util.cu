#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/cuda_util.h"

namespace simattr::cuda {

namespace {
thread_local std::string g_last_error;
}

void check(int err, const char* what) {
    if (err != cudaSuccess) {
        throw std::runtime_error(std::string(what) + ": " +
                                 cudaGetErrorString(static_cast<cudaError_t>(err)));
    }
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

void* device_alloc(size_t bytes) {
    void* p = nullptr;
    if (bytes == 0) bytes = 1;
    check(cudaMalloc(&p, bytes), "cudaMalloc");
    return p;
}

void device_free(void* p) {
    cudaFree(p);
}

void copy_to_device(void* dst, const void* src, size_t bytes) {
    check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy host->device");
}

void copy_to_host(void* dst, const void* src, size_t bytes) {
    check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy device->host");
}

}  // namespace simattr::cuda
