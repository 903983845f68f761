# Type stubs of the package nst (python/nst/__init__.py and its extension nst._nst).
# python/tests/test_stubs.py holds them to the package: every public name, and the
# parameters and defaults of stylize, stylize_result and plan, which come from the
# option list (engine/run/run_options.h).
import os
from typing import Any, Callable, Iterator, Optional, Protocol, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt
from PIL.Image import Image as _PILImage

__version__: str
__all__: list[str]

class _SupportsArray(Protocol):
    def __array__(self) -> np.ndarray[Any, Any]: ...

# A path, a PIL image, or an array (H, W, 3), (H, W, 4) or (H, W) of uint8, uint16 or
# floats in [0, 1].
ImageLike = Union[str, os.PathLike[str], _PILImage, _SupportsArray]
FloatImage = npt.NDArray[np.float32]

class InputError(ValueError): ...

class Weights:
    def __init__(self, path: Union[str, os.PathLike[str], None] = None) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def layers(self) -> int: ...

class Report:
    @property
    def iteration(self) -> int: ...
    @property
    def iterations(self) -> int: ...
    @property
    def evaluations(self) -> int: ...
    @property
    def scale(self) -> int: ...
    @property
    def scales(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def run_iteration(self) -> int: ...
    @property
    def run_iterations(self) -> int: ...
    @property
    def loss(self) -> float: ...
    @property
    def content_loss(self) -> float: ...
    @property
    def style_loss(self) -> float: ...
    @property
    def tv_loss(self) -> float: ...
    @property
    def temporal_loss(self) -> float: ...
    @property
    def seconds(self) -> float: ...
    @property
    def peak_bytes(self) -> int: ...
    @property
    def event(self) -> str: ...
    def image(self) -> FloatImage: ...

class Result:
    @property
    def image(self) -> FloatImage: ...
    @property
    def stopped_early(self) -> bool: ...
    @property
    def stop_reason(self) -> str: ...
    @property
    def iterations(self) -> int: ...
    @property
    def evaluations(self) -> int: ...
    @property
    def loss(self) -> float: ...
    @property
    def content_loss(self) -> float: ...
    @property
    def style_loss(self) -> float: ...
    @property
    def tv_loss(self) -> float: ...
    @property
    def temporal_loss(self) -> float: ...
    @property
    def backend(self) -> str: ...
    @property
    def style_weight(self) -> float: ...
    @property
    def seconds(self) -> float: ...
    @property
    def peak_bytes(self) -> int: ...
    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> np.ndarray[Any, Any]: ...

class ScalePlan:
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def tile_core(self) -> int: ...
    @property
    def tiles(self) -> int: ...
    @property
    def extent_width(self) -> int: ...
    @property
    def extent_height(self) -> int: ...
    @property
    def items(self) -> list[tuple[str, int]]: ...
    @property
    def setup_bytes(self) -> int: ...
    @property
    def peak_bytes(self) -> int: ...
    @property
    def largest_tensor_elements(self) -> int: ...
    @property
    def largest_tensor_layer(self) -> str: ...

class MemoryPlan:
    @property
    def scales(self) -> list[ScalePlan]: ...
    @property
    def peak_bytes(self) -> int: ...
    @property
    def largest_tensor_elements(self) -> int: ...
    @property
    def backend(self) -> str: ...
    @property
    def available_bytes(self) -> int: ...
    @property
    def budget_bytes(self) -> int: ...
    @property
    def fits(self) -> bool: ...
    @property
    def table(self) -> str: ...

Callback = Callable[[Report], Optional[bool]]

def stylize(
    content: ImageLike,
    style: Union[ImageLike, Sequence[ImageLike]],
    *,
    weights: Union[Weights, str, os.PathLike[str], None] = None,
    init: Union[str, ImageLike] = "content",
    scales: int = 1,
    size: int = 512,
    style_scale: float = 1,
    content_weight: float = 1,
    style_weight: Optional[float] = None,
    tv_weight: float = 0,
    temporal_weight: float = 10000000.0,
    content_layers: Union[str, Sequence[str]] = "conv4_2",
    style_layers: Union[str, Sequence[str]] = "conv1_1,conv2_1,conv3_1,conv4_1,conv5_1",
    iterations: int = 500,
    optimizer: str = "lbfgs",
    lbfgs_history: int = 100,
    lbfgs_history_precision: str = "fp32",
    line_search: str = "fixed",
    learning_rate: Optional[float] = None,
    seed: int = 0,
    pool: str = "avg",
    device: str = "auto",
    threads: Optional[int] = None,
    precision: Optional[str] = None,
    preserve_colors: str = "none",
    color_transfer: str = "symmetric",
    max_memory: Union[int, str, None] = None,
    tile: Union[int, str, None] = None,
    style_blend_weights: Optional[Sequence[float]] = None,
    scale_sizes: Optional[Sequence[int]] = None,
    scale_iterations: Optional[Sequence[int]] = None,
    mask_erosion: bool = False,
    temporal_frames: Union[int, Sequence[int]] = 1,
    passes: int = 1,
    frame_iterations: int = 200,
    frames: Optional[str] = None,
    flow: str = "dis",
    style_masks: Optional[Sequence[ImageLike]] = None,
    style_image_masks: Optional[Sequence[Optional[ImageLike]]] = None,
    content_mask: Optional[ImageLike] = None,
    callback: Optional[Callback] = None,
    progress: Optional[bool] = None,
) -> FloatImage: ...

def stylize_result(
    content: ImageLike,
    style: Union[ImageLike, Sequence[ImageLike]],
    *,
    weights: Union[Weights, str, os.PathLike[str], None] = None,
    init: Union[str, ImageLike] = "content",
    scales: int = 1,
    size: int = 512,
    style_scale: float = 1,
    content_weight: float = 1,
    style_weight: Optional[float] = None,
    tv_weight: float = 0,
    temporal_weight: float = 10000000.0,
    content_layers: Union[str, Sequence[str]] = "conv4_2",
    style_layers: Union[str, Sequence[str]] = "conv1_1,conv2_1,conv3_1,conv4_1,conv5_1",
    iterations: int = 500,
    optimizer: str = "lbfgs",
    lbfgs_history: int = 100,
    lbfgs_history_precision: str = "fp32",
    line_search: str = "fixed",
    learning_rate: Optional[float] = None,
    seed: int = 0,
    pool: str = "avg",
    device: str = "auto",
    threads: Optional[int] = None,
    precision: Optional[str] = None,
    preserve_colors: str = "none",
    color_transfer: str = "symmetric",
    max_memory: Union[int, str, None] = None,
    tile: Union[int, str, None] = None,
    style_blend_weights: Optional[Sequence[float]] = None,
    scale_sizes: Optional[Sequence[int]] = None,
    scale_iterations: Optional[Sequence[int]] = None,
    mask_erosion: bool = False,
    temporal_frames: Union[int, Sequence[int]] = 1,
    passes: int = 1,
    frame_iterations: int = 200,
    frames: Optional[str] = None,
    flow: str = "dis",
    style_masks: Optional[Sequence[ImageLike]] = None,
    style_image_masks: Optional[Sequence[Optional[ImageLike]]] = None,
    content_mask: Optional[ImageLike] = None,
    callback: Optional[Callback] = None,
    progress: Optional[bool] = None,
) -> Result: ...

def stylize_video(
    content: Union[str, os.PathLike[str]],
    style: Union[ImageLike, Sequence[ImageLike]],
    output: Union[str, os.PathLike[str], None] = None,
    *,
    work_folder: Union[str, os.PathLike[str], None] = None,
    **options: Any,
) -> Iterator[Tuple[int, FloatImage]]: ...

def plan(
    content: ImageLike,
    style: Union[ImageLike, Sequence[ImageLike]],
    *,
    weights: Union[Weights, str, os.PathLike[str], None] = None,
    init: Union[str, ImageLike] = "content",
    scales: int = 1,
    size: int = 512,
    style_scale: float = 1,
    content_weight: float = 1,
    style_weight: Optional[float] = None,
    tv_weight: float = 0,
    temporal_weight: float = 10000000.0,
    content_layers: Union[str, Sequence[str]] = "conv4_2",
    style_layers: Union[str, Sequence[str]] = "conv1_1,conv2_1,conv3_1,conv4_1,conv5_1",
    iterations: int = 500,
    optimizer: str = "lbfgs",
    lbfgs_history: int = 100,
    lbfgs_history_precision: str = "fp32",
    line_search: str = "fixed",
    learning_rate: Optional[float] = None,
    seed: int = 0,
    pool: str = "avg",
    device: str = "auto",
    threads: Optional[int] = None,
    precision: Optional[str] = None,
    preserve_colors: str = "none",
    color_transfer: str = "symmetric",
    max_memory: Union[int, str, None] = None,
    tile: Union[int, str, None] = None,
    style_blend_weights: Optional[Sequence[float]] = None,
    scale_sizes: Optional[Sequence[int]] = None,
    scale_iterations: Optional[Sequence[int]] = None,
    mask_erosion: bool = False,
    temporal_frames: Union[int, Sequence[int]] = 1,
    passes: int = 1,
    frame_iterations: int = 200,
    frames: Optional[str] = None,
    flow: str = "dis",
    style_masks: Optional[Sequence[ImageLike]] = None,
    style_image_masks: Optional[Sequence[Optional[ImageLike]]] = None,
    content_mask: Optional[ImageLike] = None,
    callback: Optional[Callback] = None,
    progress: Optional[bool] = None,
) -> MemoryPlan: ...

class BatchJob:
    @property
    def where(self) -> str: ...
    @property
    def output(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def exit_code(self) -> int: ...
    @property
    def message(self) -> str: ...
    @property
    def seconds(self) -> float: ...

class BatchSummary:
    @property
    def succeeded(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def skipped(self) -> int: ...
    @property
    def exit_code(self) -> int: ...
    @property
    def jobs(self) -> list[BatchJob]: ...

class BatchStatus:
    @property
    def done(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def pending(self) -> int: ...
    @property
    def failures(self) -> list[BatchJob]: ...

def batch(manifest: Union[str, os.PathLike[str], None] = None, **options: Any) -> BatchSummary: ...
def batch_status(manifest: Union[str, os.PathLike[str], None] = None, **options: Any) -> BatchStatus: ...
def load_image(path: Union[str, os.PathLike[str]]) -> FloatImage: ...
def save_image(path: Union[str, os.PathLike[str]], image: ImageLike) -> None: ...
def to_pil(image: Union[ImageLike, Result]) -> _PILImage: ...
def run_options() -> list[tuple[str, str, str, str]]: ...
