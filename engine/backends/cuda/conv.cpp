// cuDNN 3×3 convolutions: per-shape descriptors and algorithms, chosen once
// (see conv.h for the API and algorithm choices).
#include "engine/backends/cuda/conv.h"

#include <algorithm>
#include <string>

#include "engine/backends/cuda/device_check.h"

namespace nst::cuda {

namespace {

std::string describe(const ConvShape& s) {
    return std::to_string(s.in_channels) + "->" + std::to_string(s.out_channels) + " channels, " +
           std::to_string(s.height) + "x" + std::to_string(s.width);
}

// Exact FP32 mode: cuDNN's DEFAULT_MATH lets FP32 convolutions use TF32 tensor
// cores on Ampere and later, so exactness needs FMA_MATH (what PyTorch sets when
// TF32 is disallowed). TF32 mode: TENSOR_OP_MATH, which for FP32 data means TF32.
// (TENSOR_OP_MATH_ALLOW_CONVERSION would allow FP16 down-conversion: never.)
cudnnMathType_t requested_math(bool tf32) { return tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH; }

bool math_allowed(cudnnMathType_t math, bool tf32) {
    if (math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) return false;
    return tf32 || math == CUDNN_FMA_MATH || math == CUDNN_DEFAULT_MATH;
}

}  // namespace

struct ConvAlgorithms::Plan {
    cudnnTensorDescriptor_t input = nullptr;    // (1, C_in, H, W)
    cudnnTensorDescriptor_t output = nullptr;   // (1, C_out, H, W)
    cudnnFilterDescriptor_t filter = nullptr;   // (C_out, C_in, 3, 3)
    cudnnConvolutionDescriptor_t forward_conv = nullptr;   // each carries its algorithm's
    cudnnConvolutionDescriptor_t backward_conv = nullptr;  // math type
    cudnnConvolutionFwdAlgo_t forward_algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
    cudnnConvolutionBwdDataAlgo_t backward_algo = CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
    std::size_t forward_workspace = 0;
    std::size_t backward_workspace = 0;

    Plan() = default;
    Plan(const Plan&) = delete;
    Plan& operator=(const Plan&) = delete;
    ~Plan() {
        if (backward_conv) CUDNN_CHECK_LOG(cudnnDestroyConvolutionDescriptor(backward_conv));
        if (forward_conv) CUDNN_CHECK_LOG(cudnnDestroyConvolutionDescriptor(forward_conv));
        if (filter) CUDNN_CHECK_LOG(cudnnDestroyFilterDescriptor(filter));
        if (output) CUDNN_CHECK_LOG(cudnnDestroyTensorDescriptor(output));
        if (input) CUDNN_CHECK_LOG(cudnnDestroyTensorDescriptor(input));
    }
};

ConvAlgorithms::ConvAlgorithms(CudaContext& context) : context_(context) {}
ConvAlgorithms::~ConvAlgorithms() = default;

namespace {

void make_conv_descriptor(cudnnConvolutionDescriptor_t* conv, cudnnMathType_t math) {
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(conv));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(*conv, /*pad*/ 1, 1, /*stride*/ 1, 1,
                                                /*dilation*/ 1, 1, CUDNN_CROSS_CORRELATION,
                                                CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionMathType(*conv, math));
}

void choose_forward(cudnnHandle_t handle, bool tf32, ConvAlgorithms::Plan& plan) {
    cudnnConvolutionFwdAlgoPerf_t candidates[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int returned = 0;
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, plan.input, plan.filter,
                                                       plan.forward_conv, plan.output,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned,
                                                       candidates));
    // Fallback when no candidate qualifies: implicit GEMM is deterministic, needs
    // no workspace and supports every shape in FP32.
    cudnnMathType_t math = requested_math(tf32);
    for (int i = 0; i < returned; ++i) {
        const auto& c = candidates[i];
        if (c.status == CUDNN_STATUS_SUCCESS && c.determinism == CUDNN_DETERMINISTIC &&
            c.memory <= kConvWorkspaceCap && math_allowed(c.mathType, tf32)) {
            plan.forward_algo = c.algo;
            if (tf32) math = c.mathType;
            break;
        }
    }
    CUDNN_CHECK(cudnnSetConvolutionMathType(plan.forward_conv, math));
    CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle, plan.input, plan.filter,
                                                        plan.forward_conv, plan.output,
                                                        plan.forward_algo, &plan.forward_workspace));
}

void choose_backward_data(cudnnHandle_t handle, bool tf32, ConvAlgorithms::Plan& plan) {
    cudnnConvolutionBwdDataAlgoPerf_t candidates[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int returned = 0;
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
        handle, plan.filter, plan.output, plan.backward_conv, plan.input,
        CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &returned, candidates));
    // Fallback: ALGO_1 is deterministic and supports every shape in FP32.
    cudnnMathType_t math = requested_math(tf32);
    for (int i = 0; i < returned; ++i) {
        const auto& c = candidates[i];
        if (c.status == CUDNN_STATUS_SUCCESS && c.determinism == CUDNN_DETERMINISTIC &&
            c.memory <= kConvWorkspaceCap && math_allowed(c.mathType, tf32)) {
            plan.backward_algo = c.algo;
            if (tf32) math = c.mathType;
            break;
        }
    }
    CUDNN_CHECK(cudnnSetConvolutionMathType(plan.backward_conv, math));
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(
        handle, plan.filter, plan.output, plan.backward_conv, plan.input, plan.backward_algo,
        &plan.backward_workspace));
}

}  // namespace

ConvAlgorithms::Plan& ConvAlgorithms::plan_for(const ConvShape& shape) {
    const Key key{shape.in_channels, shape.out_channels, shape.height, shape.width};
    const auto found = plans_.find(key);
    if (found != plans_.end()) return *found->second;

    NVTX_RANGE("conv3x3_choose_algorithms");
    NST_ASSERT(shape.in_channels > 0 && shape.out_channels > 0 && shape.height > 0 &&
               shape.width > 0);
    auto plan = std::make_unique<Plan>();
    try {
        CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->input));
        CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->input, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1,
                                               shape.in_channels, shape.height, shape.width));
        CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->output));
        CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->output, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                               1, shape.out_channels, shape.height, shape.width));
        CUDNN_CHECK(cudnnCreateFilterDescriptor(&plan->filter));
        CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan->filter, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
                                               shape.out_channels, shape.in_channels, 3, 3));
        const cudnnMathType_t math = requested_math(context_.tf32());
        make_conv_descriptor(&plan->forward_conv, math);
        make_conv_descriptor(&plan->backward_conv, math);
        choose_forward(context_.cudnn(), context_.tf32(), *plan);
        choose_backward_data(context_.cudnn(), context_.tf32(), *plan);
        // Grow the shared workspace now, at the first pass over this shape, so
        // later passes never allocate.
        context_.workspace(std::max(plan->forward_workspace, plan->backward_workspace));
    } catch (const DeviceError& error) {
        throw DeviceError("cuDNN setup for a 3x3 convolution (" + describe(shape) +
                          ") failed: " + error.what());
    }
    return *plans_.emplace(key, std::move(plan)).first->second;
}

void ConvAlgorithms::forward(const ConvShape& shape, const float* x, const float* weight,
                             float* y) {
    Plan& plan = plan_for(shape);
    NVTX_RANGE("conv3x3_forward");
    const float alpha = 1.0f, beta = 0.0f;
    CUDNN_CHECK(cudnnConvolutionForward(context_.cudnn(), &alpha, plan.input, x, plan.filter,
                                        weight, plan.forward_conv, plan.forward_algo,
                                        context_.workspace(plan.forward_workspace),
                                        plan.forward_workspace, &beta, plan.output, y));
}

void ConvAlgorithms::backward_data(const ConvShape& shape, const float* dy, const float* weight,
                                   float* dx) {
    Plan& plan = plan_for(shape);
    NVTX_RANGE("conv3x3_backward_data");
    const float alpha = 1.0f, beta = 0.0f;  // beta = 0: dx is overwritten
    CUDNN_CHECK(cudnnConvolutionBackwardData(context_.cudnn(), &alpha, plan.filter, weight,
                                             plan.output, dy, plan.backward_conv,
                                             plan.backward_algo,
                                             context_.workspace(plan.backward_workspace),
                                             plan.backward_workspace, &beta, plan.input, dx));
}

}  // namespace nst::cuda
