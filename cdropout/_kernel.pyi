# Stub for the compiled module cdropout._kernel (see _kernel.pyx for the contracts).
from collections.abc import Callable
from types import NotImplementedType
from typing import Any, ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt

_P = ParamSpec("_P")
_R = TypeVar("_R")

BLOCK: int
LANES: int
ISA_LEVELS: dict[str, int]
STREAMS: dict[str, int]
ACTIVATIONS: dict[str, int]

def with_fast_path(checked: Callable[_P, _R]) -> Callable[_P, _R]: ...
def dropout_fast(
    x: object,
    p: object,
    seed: object,
    training: object,
    mode: object,
    out: object,
    offset: object,
    n_threads: object,
    stream: object,
) -> npt.NDArray[Any] | NotImplementedType: ...
def dropout_into(
    src: npt.NDArray[np.floating],
    dst: npt.NDArray[np.floating],
    seed: int,
    offset: int,
    threshold: int,
    scale: float,
    n_threads: int,
    stream: int = 0,
    act: int = 0,
    slope: float = 0.0,
) -> None: ...
def dropout_rows(
    tile: npt.NDArray[np.floating],
    seed: int,
    first: int,
    row_step: int,
    rows_per_group: int,
    group_step: int,
    threshold: int,
    scale: float,
    n_threads: int,
) -> None: ...
def mask_into(
    dst: npt.NDArray[np.bool_],
    seed: int,
    offset: int,
    threshold: int,
    n_threads: int,
    stream: int = 0,
) -> None: ...
def raw_stream(
    seed: int, offset: int, n: int, n_threads: int = 1, stream: int = 0
) -> npt.NDArray[np.uint32]: ...
def set_thread_limits(usable_cpus: int, max_threads: int) -> None: ...
def scale_floor(
    src: npt.NDArray[np.floating], dst: npt.NDArray[np.floating], scale: float,
    n_threads: int,
) -> None: ...
def dropout_memory(
    src: int, dst: int, n: int, kind: int, p: object, seed: object, mode: object,
    offset: object, n_threads: object, stream: object = "xoshiro", act: int = 0,
    slope: float = 0.0,
) -> bool: ...
def register_bfloat16(type_number: int) -> None: ...
def mark_forked_child() -> None: ...
def in_forked_child() -> bool: ...
def threshold(p: float) -> int: ...
def call_seed(seed: int, counter: int) -> int: ...
def use_isa(level: int) -> str: ...
def isa_level() -> int: ...
def use_prefetch(kind: str) -> str: ...
def prefetch_kind() -> str: ...
def set_prefetch_distance(distance: int) -> None: ...
def isa_path() -> str: ...
def best_isa() -> str: ...
def openmp_enabled() -> bool: ...
def default_threads() -> int: ...
def same_data(a: np.ndarray, b: np.ndarray) -> bool: ...
def broadcast_into(
    src: npt.NDArray[np.floating],
    dst: npt.NDArray[np.floating],
    keep: npt.NDArray[np.uint8],
    sizes: list[int],
    mask_strides: list[int],
    inner_broadcast: bool,
    scale: float,
    n_threads: int = 1,
) -> None: ...
def affine_into(
    src: npt.NDArray[np.floating],
    dst: npt.NDArray[np.floating],
    keep: npt.NDArray[np.uint8],
    a: float,
    b: float,
    c: float,
) -> None: ...
def gauss_into(
    src: npt.NDArray[np.floating],
    dst: npt.NDArray[np.floating],
    words: npt.NDArray[np.uint32],
    z: npt.NDArray[np.float64],
    first: int,
    sigma: float,
) -> None: ...
def xla_ffi_handlers() -> dict[str, object]: ...
