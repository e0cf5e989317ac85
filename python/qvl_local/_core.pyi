"""
qvl_local's C++ core: GGUF reading, CPU kernels, the Qwen2-VL decoder and vision encoder
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['GgufFile', 'TextModel', 'VisionModel', 'activation', 'active_isa', 'available_isas', 'causal_attention', 'default_threads', 'dequantize', 'layer_norm', 'matmul', 'precisions', 'quantize', 'rms_norm', 'rms_norm_heads', 'rope', 'set_isa', 'silu_mul', 'stream_read', 'type_blocks', 'vision_attention']
class GgufFile:
    """
    A validated, memory-mapped GGUF file (raises ModelFormatError)
    """
    def __init__(self, path: str) -> None:
        ...
    def metadata(self) -> dict:
        """
        All key/value pairs: scalars as Python values, number arrays as numpy
        """
    def tensor_bytes(self, name: str) -> numpy.typing.NDArray[numpy.uint8]:
        """
        The tensor's raw bytes as a read-only uint8 view of the memory map
        """
    def tensors(self) -> list:
        """
        (name, type name, type id, ggml dims, absolute offset, byte size) per tensor
        """
    def value_types(self) -> dict:
        """
        (GGUF value type id, element type id or None) per key, in file order
        """
    @property
    def path(self) -> str:
        ...
    @property
    def size(self) -> int:
        ...
    @property
    def version(self) -> int:
        ...
class TextModel:
    """
    The Qwen2 decoder with M-RoPE and a preallocated KV cache
    """
    def __init__(self, gguf: GgufFile, config: dict, n_ctx: typing.SupportsInt | typing.SupportsIndex, n_batch: typing.SupportsInt | typing.SupportsIndex, n_threads: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def forward(self, ids: typing.Annotated[numpy.typing.ArrayLike, numpy.int32], positions: typing.Annotated[numpy.typing.ArrayLike, numpy.int32], *, embeddings: typing.Any = None, embedded_rows: typing.Any = None, logits: str = 'last', precision: str = 'fast') -> typing.Any:
        """
        Runs the tokens after the cached ones; returns float32 logits [vocab] (last), [n, vocab] (all) or None
        """
    def truncate(self, n_past: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        Keeps the first n_past cached positions
        """
    @property
    def kv_cache_bytes(self) -> int:
        ...
    @property
    def n_ctx(self) -> int:
        ...
    @property
    def n_past(self) -> int:
        ...
class VisionModel:
    """
    Qwen2-VL's ViT and 2x2 patch merger over an mmproj GGUF
    """
    def __init__(self, gguf: GgufFile, params: dict, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
        """
        params: VisionConfig's fields (dataclasses.asdict); n_threads <= 0 uses every available core
        """
    def encode(self, pixel_values: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], grid_thw: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], *, pre_merge: bool = False, precision: str = 'exact') -> numpy.typing.NDArray[numpy.float32]:
        """
        pixel_values float32 (P, 1176), grid_thw int64 (k, 3) -> float32 (P / 4, out_hidden), or with pre_merge=True the last ViT block's patch features (P, hidden)
        """
    @property
    def n_threads(self) -> int:
        ...
    @property
    def patch_values(self) -> int:
        ...
def activation(name: str, x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> numpy.typing.NDArray[numpy.float32]:
    """
    'quick_gelu', 'gelu' (erf), 'gelu_tanh' on every value of x, or 'softmax' of each row, on the active ISA.
    """
def active_isa() -> str:
    """
    The ISA path in use.
    """
def available_isas() -> list[str]:
    """
    ISA paths this build and CPU can run.
    """
def causal_attention(q: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], keys: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], values: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], n_heads: typing.SupportsInt | typing.SupportsIndex, n_threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
    """
    The decoder's grouped-query causal attention: q (n, n_heads * head_dim) for the last n of n_keys positions, keys and values (n_kv_heads, n_keys, head_dim); returns float32 (n, n_heads * head_dim).
    """
def default_threads() -> int:
    """
    Threads the default pool uses.
    """
def dequantize(data: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8], type: str, rows: typing.SupportsInt | typing.SupportsIndex, cols: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
    """
    Decode `rows` x `cols` values of `type` stored in the uint8 buffer `data` to float32.
    """
def layer_norm(x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], weight: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], bias: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], eps: typing.SupportsFloat | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
    """
    LayerNorm of each row of x (rows, n) with weight and bias (n,), on the active ISA.
    """
def matmul(data: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8], type: str, rows: typing.SupportsInt | typing.SupportsIndex, cols: typing.SupportsInt | typing.SupportsIndex, x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], precision: str, n_threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
    """
    x @ W.T for W given as (data, type, rows, cols) and float32 x of shape (n, cols); precision 'exact' or 'fast'; n_threads <= 0 uses the default pool.
    """
def precisions() -> list[str]:
    """
    The matmul precisions, in order: 'exact', 'fast', 'int8'.
    """
def quantize(x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], type: str) -> numpy.typing.NDArray[numpy.uint8]:
    """
    Encode a float32 (rows, k) array as `type`; returns uint8 (rows, row_bytes) in GGUF layout.
    """
def rms_norm(x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], weight: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], eps: typing.SupportsFloat | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
    """
    RMSNorm of each row of x (rows, n) with weight (n,), on the active ISA.
    """
def rms_norm_heads(x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], weight: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], eps: typing.SupportsFloat | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
    """
    RMSNorm of each head of x (n_heads, head_dim) with one weight (head_dim,), as Qwen3's q/k norm.
    """
def rope(heads: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], cos: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], sin: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> numpy.typing.NDArray[numpy.float32]:
    """
    Rotates pairs (j, j + head_dim / 2) of each head (n_heads, head_dim) by cos[j], sin[j] (head_dim / 2,).
    """
def set_isa(name: str) -> None:
    """
    Force the kernel ISA path: 'scalar', 'avx2', 'avx512', 'amx' or 'neon'.
    """
def silu_mul(gate: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], up: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> numpy.typing.NDArray[numpy.float32]:
    """
    silu(gate) * up on the active ISA.
    """
def stream_read(data: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8], n_threads: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    Read every byte of a uint8 array on n_threads threads (<= 0: default); returns a checksum. For benchmarks: the machine's read bandwidth next to the kernels'.
    """
def type_blocks() -> dict:
    """
    The weight types the kernels run, in order: name -> (values per block, bytes per block), as in GGUF.
    """
def vision_attention(q: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], k: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], v: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], segment_bounds: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], n_heads: typing.SupportsInt | typing.SupportsIndex, precision: str, n_threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
    """
    The ViT's attention of q, k, v (rows, n_heads * head_dim) within each segment [b_i, b_i+1) of segment_bounds (0 = b_0 < ... = rows); returns float32 (rows, n_heads * head_dim).
    """
