// The device under test (device_under_test.h): the CUDA backend, or the CPU
// stand-in whose convolutions take the direct path.
#include "tests/cuda/device_under_test.h"

#include <cblas.h>

#include <cstdlib>
#include <cstring>

#include "engine/base/error.h"
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/cpu/cpu_winograd.h"
#include "engine/backends/cuda_api.h"
#ifdef NST_HAVE_CUDA
#include "engine/backends/cuda/cuda_backend.h"
#include "engine/backends/cuda/gemm.h"
#endif

namespace nst::test {

namespace {

TestDevice chosen = TestDevice::cuda;

// Selects the direct convolution for one call and restores the previous choice
// (the selection is process-wide; the tests call the backends from one thread).
class DirectConvolutions {
public:
    DirectConvolutions() : previous_(cpu::conv3x3_algorithm()) {
        cpu::set_conv3x3_algorithm(cpu::Conv3x3Algorithm::direct);
    }
    ~DirectConvolutions() { cpu::set_conv3x3_algorithm(previous_); }
    DirectConvolutions(const DirectConvolutions&) = delete;
    DirectConvolutions& operator=(const DirectConvolutions&) = delete;

private:
    cpu::Conv3x3Algorithm previous_;
};

// The CPU stand-in for the device: the reference CPU backend, but every 3×3
// convolution by im2col + SGEMM, whatever the reference would choose.
class CpuStandIn final : public CpuBackend {
public:
    CpuStandIn() : CpuBackend(0) {}
    std::string name() const override { return "cpu (as the device under test)"; }
    void conv3x3_forward(const ConvShape& shape, const float* x, const float* weight,
                         float* y) override {
        DirectConvolutions direct;
        CpuBackend::conv3x3_forward(shape, x, weight, y);
    }
    void conv3x3_backward_data(const ConvShape& shape, const float* dy, const float* weight,
                               float* dx) override {
        DirectConvolutions direct;
        CpuBackend::conv3x3_backward_data(shape, dy, weight, dx);
    }
};

}  // namespace

TestDevice test_device_from_environment() {
    const char* value = std::getenv("NST_TEST_DEVICE");
    if (value == nullptr || *value == '\0' || std::strcmp(value, "cuda") == 0)
        return TestDevice::cuda;
    if (std::strcmp(value, "cpu") == 0) return TestDevice::cpu;
    throw UsageError(std::string("NST_TEST_DEVICE='") + value + "' is not one of cuda, cpu");
}

TestDevice test_device() { return chosen; }
void set_test_device(TestDevice device) { chosen = device; }

std::string test_device_description() {
    if (chosen == TestDevice::cpu)
        return "CPU backend as the device under test (direct convolutions; no GPU involved)";
    return "CUDA device 0: " + cuda_device_description(0);
}

std::unique_ptr<Backend> make_backend_under_test(bool tf32) {
    if (chosen == TestDevice::cpu) return std::make_unique<CpuStandIn>();
    return make_cuda_backend(0, tf32);
}

void gemm_under_test(Backend& backend, bool trans_a, bool trans_b, int m, int n, int k,
                     float alpha, const float* a, int lda, const float* b, int ldb, float beta,
                     float* c, int ldc) {
    if (chosen == TestDevice::cpu) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                    ldc);
        return;
    }
#ifdef NST_HAVE_CUDA
    auto& cuda_backend = dynamic_cast<cuda::CudaBackend&>(backend);
    cuda::gemm(cuda_backend.context().cublas(), trans_a ? cuda::Transpose::yes : cuda::Transpose::no,
               trans_b ? cuda::Transpose::yes : cuda::Transpose::no, m, n, k, alpha, a, lda, b,
               ldb, beta, c, ldc);
#else
    (void)backend;
    throw UsageError("gemm_under_test: this build has no CUDA backend");
#endif
}

}  // namespace nst::test
