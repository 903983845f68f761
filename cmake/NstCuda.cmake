# Decides whether the CUDA backend is built (NST_CUDA=AUTO|ON|OFF) and sets
# NST_HAVE_CUDA. AUTO builds it when nvcc, cuDNN and cuBLAS are all found.
# NST_CUDART is the CUDA runtime the targets link: CUDA::cudart (shared, the
# default) or, with NST_CUDA_STATIC_RUNTIME=ON, CUDA::cudart_static, for
# executables that must run where only the driver, cuDNN and cuBLAS are found
# (scripts/make-device-binaries.sh).
option(NST_CUDA_STATIC_RUNTIME "Link the CUDA runtime statically (CUDA::cudart_static)" OFF)
set(NST_HAVE_CUDA OFF)
string(TOUPPER "${NST_CUDA}" _nst_cuda_mode)
if(NOT _nst_cuda_mode MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "NST_CUDA must be AUTO, ON or OFF (got '${NST_CUDA}')")
endif()

if(NOT _nst_cuda_mode STREQUAL "OFF")
  include(CheckLanguage)
  # check_language() runs a trial CUDA project and leaves CMAKE_CUDA_COMPILER
  # NOTFOUND when that fails (an nvcc without its toolkit, say), so AUTO falls
  # back to the CPU build instead of failing. nvcc need not be on PATH.
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
    find_program(_nst_nvcc nvcc HINTS /usr/local/cuda/bin ENV CUDA_PATH PATH_SUFFIXES bin)
    if(_nst_nvcc)
      set(ENV{CUDACXX} "${_nst_nvcc}")
    endif()
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      # sm_80 (A100) and sm_90 (H100/H200); override with -DCMAKE_CUDA_ARCHITECTURES=native.
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit)
    if(NST_CUDA_STATIC_RUNTIME)
      set(NST_CUDART CUDA::cudart_static)
    else()
      set(NST_CUDART CUDA::cudart)
    endif()
    find_path(NST_CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ENV CUDNN_PATH PATH_SUFFIXES include)
    # libcudnn.so.9 too: the pip wheels (nvidia-cudnn-cu13) ship no unversioned name.
    find_library(NST_CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 HINTS ${CUDAToolkit_LIBRARY_DIR} ENV CUDNN_PATH PATH_SUFFIXES lib lib64)
    if(CUDAToolkit_FOUND AND TARGET CUDA::cublas AND NST_CUDNN_INCLUDE_DIR AND NST_CUDNN_LIBRARY)
      set(NST_HAVE_CUDA ON)
    endif()
  endif()
  if(NOT NST_HAVE_CUDA)
    if(_nst_cuda_mode STREQUAL "ON")
      message(FATAL_ERROR "NST_CUDA=ON but nvcc, cuBLAS or cuDNN was not found")
    endif()
    message(STATUS "nst: CUDA backend not built (nvcc, cuBLAS or cuDNN not found)")
  else()
    message(STATUS "nst: CUDA backend built for sm ${CMAKE_CUDA_ARCHITECTURES} (cuDNN: ${NST_CUDNN_LIBRARY})")
  endif()
endif()
