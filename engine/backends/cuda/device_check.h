// Host-side error checks for the CUDA backend: CUBLAS_CHECK and CUDNN_CHECK,
// made from the same generic NST_DEVICE_CHECK as CUDA_CHECK (kernels/common.cuh),
// and their *_CHECK_LOG variants for destructors.
#pragma once

#include <cublas_v2.h>
#include <cudnn.h>

#include "kernels/common.cuh"

#define CUBLAS_CHECK(call) NST_DEVICE_CHECK(call, CUBLAS_STATUS_SUCCESS, cublasGetStatusString)
#define CUBLAS_CHECK_LOG(call) NST_DEVICE_CHECK_LOG(call, CUBLAS_STATUS_SUCCESS, cublasGetStatusString)
#define CUDNN_CHECK(call) NST_DEVICE_CHECK(call, CUDNN_STATUS_SUCCESS, cudnnGetErrorString)
#define CUDNN_CHECK_LOG(call) NST_DEVICE_CHECK_LOG(call, CUDNN_STATUS_SUCCESS, cudnnGetErrorString)
