// 3×3 convolutions (padding 1, stride 1, cross-correlation, NCHW float32, N = 1)
// through cuDNN, with the algorithms chosen once per layer shape and cached.
//
// API choice: the legacy cuDNN v9 API (cudnnConvolutionForward /
// cudnnConvolutionBackwardData with tensor, filter and convolution descriptors).
// It is deprecated in cuDNN 9 but complete for a plain FP32 convolution; the
// graph API needs either cudnn-frontend (a separate C++ library the toolkit does
// not ship) or several hundred lines of backend-descriptor code for the same
// two operations, and we fuse nothing into the convolution (bias + ReLU is our
// own kernel, shared with the backward mask). Moving to the graph API is the
// path when the legacy API is removed.
//
// Algorithm choice: cudnnGet*Algorithm_v7 (heuristics), not cudnnFind*Ex
// (timing). Find times the candidates, so two runs can pick different
// algorithms and produce different bits; the heuristics give the same answer
// every time on the same card and library. Among the candidates we keep the
// first (best ranked) one that is deterministic (no atomics: excludes backward-
// data ALGO_0), fits the workspace cap and honours the math mode.
#pragma once

#include <cudnn.h>

#include <map>
#include <memory>
#include <tuple>

#include "engine/backends/backend.h"
#include "engine/backends/cuda/cuda_context.h"

namespace nst::cuda {

// The largest workspace an algorithm may ask for. The VGG-19 layers at 512 px
// need a few MiB with the implicit-GEMM and Winograd algorithms; FFT variants
// can ask for gigabytes and are not worth it for 3×3 kernels. The memory plan
// counts the cap (CudaBackend::planned_conv_memory).
constexpr std::size_t kConvWorkspaceCap = std::size_t(512) << 20;

// cuDNN's (legacy) tensor descriptors hold int element counts and strides: a
// tensor of 2³¹ elements or more gets CUDNN_STATUS_NOT_SUPPORTED. The plan
// refuses such a run up front (Backend::max_tensor_elements).
constexpr std::size_t kMaxCudnnTensorElements = (std::size_t(1) << 31) - 1;

class ConvAlgorithms {
public:
    explicit ConvAlgorithms(CudaContext& context);
    ~ConvAlgorithms();
    ConvAlgorithms(const ConvAlgorithms&) = delete;
    ConvAlgorithms& operator=(const ConvAlgorithms&) = delete;

    // x (C_in, H, W), weight (C_out, C_in, 3, 3) -> y (C_out, H, W)
    void forward(const ConvShape& shape, const float* x, const float* weight, float* y);
    // dy (C_out, H, W), weight (C_out, C_in, 3, 3) -> dx (C_in, H, W), overwritten
    void backward_data(const ConvShape& shape, const float* dy, const float* weight, float* dx);

    struct Plan;  // descriptors and chosen algorithms of one shape (conv.cpp)

private:
    using Key = std::tuple<int, int, int, int>;  // C_in, C_out, H, W
    Plan& plan_for(const ConvShape& shape);

    CudaContext& context_;
    std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace nst::cuda
