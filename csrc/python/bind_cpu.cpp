// pybind11 module `_cpu`: converts arrays to views, releases the GIL, calls the core.
// Validation lives in Python (simattr_fast/_validate.py); the checks here only guard memory.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "common/parallel.h"
#include "cpu/esvm.h"
#include "cpu/gram.h"
#include "cpu/prefilter.h"
#include "cpu/prefilter_amx.h"
#include "cpu/rows.h"
#include "cpu/topk.h"
#include "python/bind_common.h"

namespace py = pybind11;
using namespace simattr;

namespace {

Blas g_blas;  // set once from SciPy's BLAS; null entries -> portable fallbacks

using F32 = py::array_t<float, py::array::c_style>;
using I64 = py::array_t<int64_t, py::array::c_style>;
using F64 = py::array_t<double, py::array::c_style>;

void require(bool ok, const std::string& msg) {
    if (!ok) throw std::invalid_argument(msg);
}

void* capsule_pointer(const py::capsule& cap) {
    void* p = PyCapsule_GetPointer(cap.ptr(), PyCapsule_GetName(cap.ptr()));
    if (p == nullptr) throw py::error_already_set();
    return p;
}

void set_blas(py::capsule dgemm, py::capsule dtrsm, py::capsule dsyrk, py::capsule dpotrf) {
    g_blas.dgemm = reinterpret_cast<DgemmFn>(capsule_pointer(dgemm));
    g_blas.dtrsm = reinterpret_cast<DtrsmFn>(capsule_pointer(dtrsm));
    g_blas.dsyrk = reinterpret_cast<DsyrkFn>(capsule_pointer(dsyrk));
    g_blas.dpotrf = reinterpret_cast<DpotrfFn>(capsule_pointer(dpotrf));
}

void topk_py(TopkAccumulator& acc, const F32& queries, const F32& keys, const I64& ids,
             py::object key_sq_norms, Metric metric, int64_t row0, int n_threads, int prefilter) {
    require(queries.ndim() == 2 && keys.ndim() == 2 && ids.ndim() == 1, "topk: bad ndim");
    const int64_t nq = queries.shape(0), d = queries.shape(1), nb = keys.shape(0);
    require(keys.shape(1) == d && ids.shape(0) == nb, "topk: shape mismatch");
    require(row0 >= 0 && row0 + nq <= acc.rows(), "topk: rows out of range");
    const float* sq = nullptr;
    F32 sqa;
    if (!key_sq_norms.is_none()) {
        sqa = key_sq_norms.cast<F32>();
        require(sqa.ndim() == 1 && sqa.shape(0) == nb, "topk: key_sq_norms shape");
        sq = sqa.data();
    }
    require(metric != Metric::L2 || sq != nullptr, "topk: L2 needs key_sq_norms");
    require(prefilter >= 0 && prefilter <= 2, "topk: prefilter must be 0 (off), 1 (on) or 2 (auto)");
    py::gil_scoped_release nogil;
    topk(queries.data(), d, nq, keys.data(), d, nb, d, ids.data(), sq, metric, acc, row0, n_threads,
         Prefilter(prefilter));
}

// dst [n, d] = src [n, d] (float16 or float32, C-contiguous; dst may be src) prepared by
// cpu/rows.h; returns the first row holding a NaN or an infinity, or -1.
int64_t prepare_rows_py(const py::array& src, F32& dst, bool normalize, int n_threads) {
    require(
        src.ndim() == 2 && dst.ndim() == 2 && src.shape(0) == dst.shape(0) && src.shape(1) == dst.shape(1),
        "prepare_rows: shape mismatch");
    require((src.flags() & py::array::c_style) != 0, "prepare_rows: src must be C-contiguous");
    const char kind = src.dtype().kind();
    const int64_t n = src.shape(0), d = src.shape(1), size = src.itemsize();
    require(kind == 'f' && (size == 2 || size == 4), "prepare_rows: src must be float16 or float32");
    float* out = dst.mutable_data();
    py::gil_scoped_release nogil;
    if (size == 2)
        return prepare_rows_f16(static_cast<const uint16_t*>(src.data()), d, n, d, out, normalize, n_threads);
    return prepare_rows_f32(static_cast<const float*>(src.data()), d, n, d, out, normalize, n_threads);
}

// sq [n] = the squared norms of src [n, d] (float32, C-contiguous) by cpu/rows.h; returns the
// first row holding a NaN or an infinity, or -1.
int64_t row_sq_norms_py(const F32& src, F64& sq, int n_threads) {
    require(src.ndim() == 2, "row_sq_norms: src must be 2-D");
    require(sq.ndim() == 1 && sq.shape(0) == src.shape(0), "row_sq_norms: sq must hold one value per row");
    const int64_t n = src.shape(0), d = src.shape(1);
    double* out = sq.mutable_data();
    py::gil_scoped_release nogil;
    return row_sq_norms_f32(src.data(), d, n, d, out, n_threads);
}

py::tuple finalize_py(TopkAccumulator& acc, int n_threads) {
    F32 scores({acc.rows(), acc.k()});
    I64 ids({acc.rows(), acc.k()});
    {
        py::gil_scoped_release nogil;
        acc.finalize(scores.mutable_data(), ids.mutable_data(), nullptr, n_threads);
    }
    return py::make_tuple(scores, ids);
}

// Writes accumulator row r into row row_map[r] of caller-owned outputs [n_out, k].
void finalize_into_py(TopkAccumulator& acc, F32& scores, I64& ids, const I64& row_map, int n_threads) {
    require(scores.ndim() == 2 && ids.ndim() == 2 && scores.shape(1) == acc.k() && ids.shape(1) == acc.k() &&
                scores.shape(0) == ids.shape(0) && row_map.ndim() == 1 && row_map.shape(0) == acc.rows(),
            "finalize_into: shape mismatch");
    const int64_t n_out = scores.shape(0);
    const int64_t* map = row_map.data();
    for (int64_t r = 0; r < acc.rows(); ++r)
        require(map[r] >= 0 && map[r] < n_out, "finalize_into: row_map out of range");
    py::gil_scoped_release nogil;
    acc.finalize(scores.mutable_data(), ids.mutable_data(), map, n_threads);
}

py::tuple esvm_topk_py(TopkAccumulator& acc, const F32& queries, const F32& keys, const I64& key_ids,
                       const I64& query_ids, double C, bool squared_hinge, double intercept_scaling,
                       double tol, int64_t max_iter, uint64_t seed, int64_t row0, int n_threads) {
    require(queries.ndim() == 2 && keys.ndim() == 2, "esvm_topk: bad ndim");
    const int64_t m = queries.shape(0), d = queries.shape(1), n = keys.shape(0);
    require(keys.shape(1) == d && key_ids.shape(0) == n && query_ids.shape(0) == m,
            "esvm_topk: shape mismatch");
    require(row0 >= 0 && row0 + m <= acc.rows(), "esvm_topk: rows out of range");
    const EsvmParams p = esvm_params(C, squared_hinge, intercept_scaling, tol, max_iter, seed, n_threads);
    I64 n_iter({m});
    py::array_t<uint8_t> converged({m});
    {
        py::gil_scoped_release nogil;
        esvm_topk(queries.data(), d, m, keys.data(), d, n, d, key_ids.data(), query_ids.data(), p, g_blas,
                  acc, row0, n_iter.mutable_data(), converged.mutable_data());
    }
    return py::make_tuple(n_iter, converged);
}

}  // namespace

PYBIND11_MODULE(_cpu, m) {
    m.attr("PREFILTER_AUTO_DENSITY") = kAutoDensity;  // auto keeps the first pass below this share
    bind_common(m, "simattr_fast CPU kernels (see simattr_fast for the public API)");
    // Test hook: a parallel_for whose iteration `bad` throws on a worker thread; the error
    // must come back as a Python exception, not terminate the process.
    m.def(
        "_parallel_for_throw",
        [](int64_t n, int64_t bad, int n_threads) {
            py::gil_scoped_release nogil;
            parallel_for(n, n_threads, [&](int64_t i) {
                if (i == bad)
                    throw std::runtime_error("parallel_for: iteration " + std::to_string(i) + " failed");
            });
        },
        py::arg("n"), py::arg("bad"), py::arg("n_threads"));
    m.def("set_blas", &set_blas, py::arg("dgemm"), py::arg("dtrsm"), py::arg("dsyrk"), py::arg("dpotrf"));
    m.def("clear_blas", [] { g_blas = Blas{}; }, "Use the portable fallbacks (for tests).");
    m.def("has_blas", [] {
        return g_blas.dgemm != nullptr && g_blas.dtrsm != nullptr && g_blas.dsyrk != nullptr &&
               g_blas.dpotrf != nullptr;
    });
    py::class_<TopkAccumulator>(m, "TopkAccumulator")
        .def(py::init<int64_t, int64_t>(), py::arg("nq"), py::arg("k"))
        .def_property_readonly("rows", &TopkAccumulator::rows)
        .def_property_readonly("k", &TopkAccumulator::k)
        .def("finalize", &finalize_py, py::arg("n_threads") = 0)
        .def("finalize_into", &finalize_into_py, py::arg("scores").noconvert(), py::arg("ids").noconvert(),
             py::arg("row_map").noconvert(), py::arg("n_threads") = 0);
    m.def("topk", &topk_py, py::arg("acc"), py::arg("queries").noconvert(), py::arg("keys").noconvert(),
          py::arg("ids").noconvert(), py::arg("key_sq_norms"), py::arg("metric"), py::arg("row0"),
          py::arg("n_threads") = 0, py::arg("prefilter") = 0);
    m.def("prepare_rows", &prepare_rows_py, py::arg("src"), py::arg("dst").noconvert(), py::arg("normalize"),
          py::arg("n_threads") = 0);
    m.def("row_sq_norms", &row_sq_norms_py, py::arg("src").noconvert(), py::arg("sq").noconvert(),
          py::arg("n_threads") = 0);
    m.def("bf16_prefilter_available", &bf16_prefilter_available);
    m.def("prefilter_kernel", [] { return std::string(prefilter_kernel()); });
    m.def(
        "set_gram_kernel", [](const std::string& name) { set_gram_kernel(name.c_str()); }, py::arg("name"),
        "For tests: 'auto' or 'dgemm' (the exemplar SVMs' Gram rows by BLAS, as without AVX-512).");
    m.def(
        "set_esvm_start", [](const std::string& name) { set_esvm_start(name.c_str()); }, py::arg("name"),
        "For tests and benchmarks: 'auto', 'nearest' or 'lda' (how the SVMs' working sets start).");
    m.def(
        "set_prefilter_kernel", [](const std::string& name) { set_prefilter_kernel(name.c_str()); },
        py::arg("name"), "For tests: 'auto', 'avx512bf16' or 'amx-emulated'.");
    m.def("prefilter_stats", [] {
        const PrefilterStats st = prefilter_stats();
        return py::make_tuple(st.pairs, st.candidates);
    });
    m.def("reset_prefilter_stats", &reset_prefilter_stats);
    m.def("esvm_topk", &esvm_topk_py, py::arg("acc"), py::arg("queries").noconvert(),
          py::arg("keys").noconvert(), py::arg("key_ids").noconvert(), py::arg("query_ids").noconvert(),
          py::arg("C"), py::arg("squared_hinge"), py::arg("intercept_scaling"), py::arg("tol"),
          py::arg("max_iter"), py::arg("seed"), py::arg("row0"), py::arg("n_threads") = 0);
}
