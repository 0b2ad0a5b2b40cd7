// pybind11 module `_cuda`: same function names as `_cpu`. Device arrays travel as raw
// pointers (taken in Python from __cuda_array_interface__); host arrays are uploaded into
// DeviceArray. CUDA errors surface as RuntimeError with the CUDA error string.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <memory>
#include <stdexcept>

#include "cuda/cuda_util.h"
#include "cuda/esvm_cuda.h"
#include "cuda/topk_cuda.h"
#include "python/bind_common.h"

namespace py = pybind11;
using namespace simattr;
using simattr::cuda::TopkAccumulatorCuda;

namespace {

// An owning device copy of a host array (any dtype; the bytes are copied as they are).
class DeviceArray {
public:
    explicit DeviceArray(const py::array& host) {
        if (!(host.flags() & py::array::c_style))
            throw std::invalid_argument("DeviceArray: host array must be C-contiguous");
        bytes_ = size_t(host.nbytes());
        buf_.reset(bytes_);
        py::gil_scoped_release nogil;
        cuda::copy_to_device(buf_.get(), host.data(), bytes_);
    }
    uintptr_t ptr() const { return reinterpret_cast<uintptr_t>(buf_.get()); }
    size_t nbytes() const { return bytes_; }

private:
    cuda::DeviceBuffer<char> buf_;
    size_t bytes_ = 0;
};

// A Python context manager around cuda::DeviceGuard.
class DeviceGuardScope {
public:
    explicit DeviceGuardScope(int device) : device_(device) {}
    DeviceGuardScope& enter() {
        guard_ = std::make_unique<cuda::DeviceGuard>(device_);
        return *this;
    }
    void exit() { guard_.reset(); }

private:
    int device_;
    std::unique_ptr<cuda::DeviceGuard> guard_;
};

template <class T>
const T* as_ptr(uintptr_t p) {
    return reinterpret_cast<const T*>(p);
}

py::tuple finalize_py(TopkAccumulatorCuda& acc) {
    py::array_t<float> s({acc.rows(), acc.k()});
    py::array_t<int64_t> i({acc.rows(), acc.k()});
    {
        py::gil_scoped_release nogil;
        acc.finalize(s.mutable_data(), i.mutable_data());
    }
    return py::make_tuple(s, i);
}

void topk_py(TopkAccumulatorCuda& acc, uintptr_t queries, DType qtype, uintptr_t keys, DType ktype,
             int64_t nb, int64_t d, int64_t id0, Metric metric, uintptr_t query_labels,
             uintptr_t key_labels) {
    py::gil_scoped_release nogil;
    acc.topk(as_ptr<void>(queries), qtype, as_ptr<void>(keys), ktype, nb, d, id0, metric,
             as_ptr<int64_t>(query_labels), as_ptr<int64_t>(key_labels));
}

py::tuple esvm_topk_py(TopkAccumulatorCuda& acc, uintptr_t queries, DType qtype, uintptr_t query_rows,
                       uintptr_t query_class, py::array_t<int32_t, py::array::c_style> host_query_class,
                       uintptr_t keys, DType ktype, uintptr_t key_rows,
                       py::array_t<int64_t, py::array::c_style> key_offsets, int64_t d,
                       py::array_t<int64_t, py::array::c_style> query_ids, double C, bool squared_hinge,
                       double intercept_scaling, double tol, int64_t max_iter, uint64_t seed, int form) {
    if (form < 0 || form > 2)
        throw std::invalid_argument("esvm_topk: form must be 0 (auto), 1 (primal) or 2 (gram)");
    if (host_query_class.ndim() != 1 || query_ids.ndim() != 1 || key_offsets.ndim() != 1)
        throw std::invalid_argument("esvm_topk: query_class, query_ids and key_offsets must be 1-d");
    const int64_t m = host_query_class.shape(0);
    if (query_ids.shape(0) != m)
        throw std::invalid_argument("esvm_topk: query_ids must have one entry per query");
    if (key_offsets.shape(0) < 2)
        throw std::invalid_argument("esvm_topk: key_offsets needs n_classes + 1 entries");
    const EsvmParams p = esvm_params(C, squared_hinge, intercept_scaling, tol, max_iter, seed);
    py::array_t<int64_t> n_iter({m});
    py::array_t<uint8_t> converged({m});
    {
        py::gil_scoped_release nogil;
        cuda::esvm_topk(as_ptr<void>(queries), qtype, as_ptr<int64_t>(query_rows),
                        as_ptr<int32_t>(query_class), host_query_class.data(), m, as_ptr<void>(keys), ktype,
                        as_ptr<int64_t>(key_rows), key_offsets.data(), key_offsets.shape(0) - 1, d,
                        query_ids.data(), p, cuda::EsvmForm(form), acc, n_iter.mutable_data(),
                        converged.mutable_data());
    }
    return py::make_tuple(n_iter, converged);
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
    bind_common(m, "simattr_fast CUDA kernels (see simattr_fast for the public API)");
    m.def("device_count", &cuda::device_count);
    m.def(
        "pointer_device", [](uintptr_t p) { return cuda::pointer_device(reinterpret_cast<const void*>(p)); },
        py::arg("ptr"), "The device owning a device pointer (-1 for host memory).");
    m.def(
        "wait_stream",
        [](uintptr_t stream) {
            py::gil_scoped_release nogil;
            cuda::wait_stream(stream);
        },
        py::arg("stream"), "Waits for a producer's stream (__cuda_array_interface__ v3 'stream').");
    // `with DeviceGuard(d):` runs the body with device d current and restores the previous one.
    py::class_<DeviceGuardScope>(m, "DeviceGuard")
        .def(py::init<int>(), py::arg("device"))
        .def("__enter__", &DeviceGuardScope::enter, py::return_value_policy::reference)
        .def("__exit__", [](DeviceGuardScope& g, const py::args&) { g.exit(); });
    m.def("last_error", &cuda::last_error);
    py::class_<DeviceArray>(m, "DeviceArray")
        .def(py::init<const py::array&>(), py::arg("host"))
        .def_property_readonly("ptr", &DeviceArray::ptr)
        .def_property_readonly("nbytes", &DeviceArray::nbytes);
    py::class_<TopkAccumulatorCuda>(m, "TopkAccumulator")
        .def(py::init<int64_t, int64_t, int64_t>(), py::arg("nq"), py::arg("k"), py::arg("max_cols"))
        .def_property_readonly("rows", &TopkAccumulatorCuda::rows)
        .def_property_readonly("k", &TopkAccumulatorCuda::k)
        .def("finalize", &finalize_py);
    m.def("topk", &topk_py, py::arg("acc"), py::arg("queries"), py::arg("qtype"), py::arg("keys"),
          py::arg("ktype"), py::arg("nb"), py::arg("d"), py::arg("id0"), py::arg("metric"),
          py::arg("query_labels"), py::arg("key_labels"));
    m.def("esvm_topk", &esvm_topk_py, py::arg("acc"), py::arg("queries"), py::arg("qtype"),
          py::arg("query_rows"), py::arg("query_class"), py::arg("host_query_class"), py::arg("keys"),
          py::arg("ktype"), py::arg("key_rows"), py::arg("key_offsets"), py::arg("d"), py::arg("query_ids"),
          py::arg("C"), py::arg("squared_hinge"), py::arg("intercept_scaling"), py::arg("tol"),
          py::arg("max_iter"), py::arg("seed"), py::arg("form"));
    m.def(
        "esvm_uses_gram",
        [](int64_t n, int64_t d, int form) { return cuda::esvm_uses_gram(n, d, cuda::EsvmForm(form)); },
        py::arg("n"), py::arg("d"), py::arg("form"));
}
