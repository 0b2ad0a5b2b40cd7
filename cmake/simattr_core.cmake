# The CPU core as a static library, shared by the `_cpu` module and the C++ tests (tests/cpp).
set(SIMATTR_SRC_DIR "${CMAKE_CURRENT_LIST_DIR}/../csrc")

function(simattr_add_core name)
  find_package(OpenMP COMPONENTS CXX)
  add_library(${name} STATIC
    ${SIMATTR_SRC_DIR}/cpu/blas.cpp
    ${SIMATTR_SRC_DIR}/cpu/gram_cpu.cpp
    ${SIMATTR_SRC_DIR}/cpu/scores_cpu.cpp
    ${SIMATTR_SRC_DIR}/cpu/topk_cpu.cpp
    ${SIMATTR_SRC_DIR}/cpu/prefilter_cpu.cpp
    ${SIMATTR_SRC_DIR}/cpu/prefilter_kernels_cpu.cpp
    ${SIMATTR_SRC_DIR}/cpu/prefilter_amx_cpu.cpp
    ${SIMATTR_SRC_DIR}/cpu/rows_cpu.cpp
    ${SIMATTR_SRC_DIR}/cpu/dcd_cpu.cpp
    ${SIMATTR_SRC_DIR}/cpu/cholesky.cpp
    ${SIMATTR_SRC_DIR}/cpu/newton.cpp
    ${SIMATTR_SRC_DIR}/cpu/esvm_start.cpp
    ${SIMATTR_SRC_DIR}/cpu/esvm_round.cpp
    ${SIMATTR_SRC_DIR}/cpu/esvm_cpu.cpp)
  target_include_directories(${name} PUBLIC ${SIMATTR_SRC_DIR})
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
  target_compile_options(${name} PRIVATE -Wall -Wextra)
  if(OpenMP_CXX_FOUND)
    target_link_libraries(${name} PUBLIC OpenMP::OpenMP_CXX)
  else()
    message(WARNING "OpenMP not found: CPU kernels will run on one thread")
  endif()
endfunction()
