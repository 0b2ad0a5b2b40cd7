// What both binding modules share: the module header (doc, version) and the core's enums.
// The enums are module-local: `_cpu` and `_cuda` each own their Python type for them.
#pragma once
#include <pybind11/pybind11.h>

#include "common/views.h"

namespace simattr {

inline void bind_common(pybind11::module_& m, const char* doc) {
    namespace py = pybind11;
    m.doc() = doc;
    m.attr("__version__") = SIMATTR_VERSION;  // from pyproject.toml, through CMake
    py::enum_<Metric>(m, "Metric", py::module_local())
        .value("cosine", Metric::Cosine)
        .value("ip", Metric::IP)
        .value("l2", Metric::L2);
    py::enum_<DType>(m, "DType", py::module_local())
        .value("float32", DType::F32)
        .value("float16", DType::F16);
}

}  // namespace simattr
