// The backend the tests in tests/cuda/ hold against the CPU reference, chosen
// once at start-up (cuda_test_main.cpp) from NST_TEST_DEVICE:
//
//   cuda (or unset)  the CUDA backend on device 0; without a GPU the program
//                    exits 77, which ctest reports as skipped, never as passed;
//   cpu              a second CPU backend standing in for the device, so that
//                    every test body runs where there is no GPU (CI): a wrong
//                    catch, a wrong expected exception, a tolerance that cannot
//                    hold, or an op without a case fails here first.
//
// The stand-in differs from the reference where the GPU does: its 3×3
// convolutions take the direct im2col + SGEMM path (the reference takes Winograd
// on wide layers, engine/backends/cpu/cpu_winograd.h), so convolution
// outputs differ from the reference by rounding, as cuDNN's do, and the
// tolerances are exercised rather than met trivially. Everything else it
// computes as the reference does.
#pragma once

#include <memory>
#include <string>

#include "engine/backends/backend.h"

namespace nst::test {

enum class TestDevice { cuda, cpu };

// Reads NST_TEST_DEVICE; throws UsageError for any other value.
TestDevice test_device_from_environment();

// The device chosen at start-up (set_test_device, called by main).
TestDevice test_device();
void set_test_device(TestDevice device);

// One line for the test log: "CUDA device 0: NVIDIA H100 ... (sm_90, 79.1 GiB)" or
// "CPU backend as the device (direct convolutions)".
std::string test_device_description();

// A fresh backend of the device under test. tf32: TF32 tensor-core math on
// CUDA; the CPU stand-in has no TF32 and computes in FP32 either way.
std::unique_ptr<Backend> make_backend_under_test(bool tf32 = false);

// C (m, n) = alpha · op(A) · op(B) + beta · C, row-major with leading dimensions,
// through the device's BLAS: cuda::gemm (cuBLAS) on CUDA, cblas_sgemm on the CPU.
// trans_a: A is stored (k, m) and transposed; trans_b: B is stored (n, k).
void gemm_under_test(Backend& backend, bool trans_a, bool trans_b, int m, int n, int k,
                     float alpha, const float* a, int lda, const float* b, int ldb, float beta,
                     float* c, int ldc);

}  // namespace nst::test
