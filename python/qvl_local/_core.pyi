"""
qvl_local's C++ core: GGUF reading, CPU kernels, the Qwen-VL decoder and vision encoder
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['GgufFile', 'MRopeLayout', 'MergerSpec', 'NormKind', 'TextBlockKind', 'TextModel', 'TextSpec', 'ThreadPool', 'VisionMlpKind', 'VisionModel', 'VisionSpec', 'activation', 'active_isa', 'available_isas', 'causal_attention', 'default_threads', 'dequantize', 'layer_norm', 'matmul', 'position_embedding', 'precisions', 'quantize', 'rms_norm', 'rms_norm_heads', 'rope', 'set_isa', 'silu_mul', 'stream_read', 'type_blocks', 'vision_attention', 'window_order']
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
class MRopeLayout:
    """
    How M-RoPE gives frequency pairs to t, h, w
    """
    sectioned: typing.ClassVar[MRopeLayout]  # value = <MRopeLayout.sectioned: 0>
    interleaved: typing.ClassVar[MRopeLayout]  # value = <MRopeLayout.interleaved: 1>
    __members__: typing.ClassVar[dict[str, MRopeLayout]]
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class MergerSpec:
    """
    A patch merger's norm and tensor names (model_spec.h)
    """
    def __init__(self) -> None:
        ...
    fc1_name: str
    fc2_name: str
    norm: NormKind
    norm_after_merge: bool
    norm_name: str
class NormKind:
    """
    layer_norm (weight and bias) or rms_norm (weight)
    """
    layer_norm: typing.ClassVar[NormKind]  # value = <NormKind.layer_norm: 0>
    rms_norm: typing.ClassVar[NormKind]  # value = <NormKind.rms_norm: 1>
    __members__: typing.ClassVar[dict[str, NormKind]]
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class TextBlockKind:
    """
    Decoder block: qwen2 (q/k/v biases) or qwen3 (per-head q/k RMSNorm)
    """
    qwen2: typing.ClassVar[TextBlockKind]  # value = <TextBlockKind.qwen2: 0>
    qwen3: typing.ClassVar[TextBlockKind]  # value = <TextBlockKind.qwen3: 1>
    __members__: typing.ClassVar[dict[str, TextBlockKind]]
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class TextModel:
    """
    The decoder with M-RoPE and a preallocated KV cache
    """
    def __init__(self, gguf: GgufFile, spec: TextSpec, n_ctx: typing.SupportsInt | typing.SupportsIndex, n_batch: typing.SupportsInt | typing.SupportsIndex, pool: ThreadPool) -> None:
        ...
    def forward(self, ids: typing.Annotated[numpy.typing.ArrayLike, numpy.int32], positions: typing.Annotated[numpy.typing.ArrayLike, numpy.int32], *, embeddings: typing.Any = None, embedded_rows: typing.Any = None, logits: str = 'last', precision: str = 'fast') -> typing.Any:
        """
        Runs the tokens after the cached ones; returns float32 logits [vocab] (last), [n, vocab] (all) or None. embeddings: float32 (k, hidden) for the k embedded_rows, or (k, 1 + spec.deepstack_layers, hidden) with each row's deepstack features after its embedding (VisionModel.encode_features)
        """
    def trace(self, ids: typing.Annotated[numpy.typing.ArrayLike, numpy.int32], positions: typing.Annotated[numpy.typing.ArrayLike, numpy.int32], *, embeddings: typing.Any = None, embedded_rows: typing.Any = None, precision: str = 'fast') -> dict:
        """
        forward (appending to the cache) that also returns the named activations: 'input', 'block.<i>' (each layer's hidden states) and 'logits', float32 [n, ...] each
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
    @property
    def spec(self) -> TextSpec:
        ...
class TextSpec:
    """
    The decoder's sizes and variant (model_spec.h); built by qvl_local.config
    """
    def __init__(self) -> None:
        ...
    block: TextBlockKind
    deepstack_layers: int
    head_dim: int
    hidden_size: int
    intermediate_size: int
    mrope_layout: MRopeLayout
    @property
    def mrope_sections(self) -> typing.Annotated[list[int], "FixedSize(3)"]:
        ...
    @mrope_sections.setter
    def mrope_sections(self, arg0: typing.Annotated[list[int], "FixedSize(3)"]) -> None:
        ...
    num_heads: int
    num_kv_heads: int
    num_layers: int
    rms_norm_eps: float
    rope_theta: float
    vocab_size: int
class ThreadPool:
    """
    Worker threads a model's parts share
    """
    def __init__(self, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
        """
        n_threads <= 0 uses every core this process may run on
        """
    @property
    def size(self) -> int:
        ...
class VisionMlpKind:
    """
    The ViT MLP: quick_gelu / gelu_tanh fc1-fc2, or swiglu gate-up-down
    """
    quick_gelu: typing.ClassVar[VisionMlpKind]  # value = <VisionMlpKind.quick_gelu: 0>
    swiglu: typing.ClassVar[VisionMlpKind]  # value = <VisionMlpKind.swiglu: 1>
    gelu_tanh: typing.ClassVar[VisionMlpKind]  # value = <VisionMlpKind.gelu_tanh: 2>
    __members__: typing.ClassVar[dict[str, VisionMlpKind]]
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class VisionModel:
    """
    The ViT, its patch merger and deepstack mergers over a GGUF
    """
    def __init__(self, gguf: GgufFile, spec: VisionSpec, pool: ThreadPool) -> None:
        ...
    def encode(self, pixel_values: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], grid_thw: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], *, pre_merge: bool = False, precision: str = 'exact') -> numpy.typing.NDArray[numpy.float32]:
        """
        pixel_values float32 (P, patch_values), grid_thw int64 (k, 3) -> float32 (P / 4, out_hidden), or with pre_merge=True the last ViT block's patch features (P, hidden)
        """
    def encode_features(self, pixel_values: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], grid_thw: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], *, precision: str = 'exact') -> numpy.typing.NDArray[numpy.float32]:
        """
        float32 (P / 4, 1 + deepstack_taps, out_hidden): each token's embedding, then its deepstack features (the decoder's embeddings input)
        """
    def trace(self, pixel_values: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], grid_thw: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], *, precision: str = 'exact') -> dict:
        """
        The named activations of one encode: 'patch_embed', 'block.<i>', 'deepstack.<k>', 'merger', in the preprocessor's patch / token order
        """
    @property
    def deepstack_taps(self) -> int:
        ...
    @property
    def patch_values(self) -> int:
        ...
    @property
    def spec(self) -> VisionSpec:
        ...
class VisionSpec:
    """
    The vision encoder's sizes, variant and tensor names (model_spec.h); built by qvl_local.config
    """
    def __init__(self) -> None:
        ...
    block_norm: NormKind
    deepstack_layers: list[int]
    deepstack_mergers: list[MergerSpec]
    full_attention_layers: list[int]
    fused_qkv: bool
    hidden_size: int
    intermediate_size: int
    layer_norm_eps: float
    merger: MergerSpec
    merger_hidden_size: int
    mlp: VisionMlpKind
    num_heads: int
    num_layers: int
    out_hidden_size: int
    patch_bias_name: str
    position_embed_name: str
    patch_embed_names: list[str]
    patch_size: int
    rope_theta: float
    spatial_merge_size: int
    temporal_patch_size: int
    window_size: int
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
def position_embedding(table: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], grid_thw: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], merge: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
    """
    Qwen3-VL's learned positions: table float32 (side * side, width) interpolated to each grid, in merge order
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
def set_decode_row_order(order: str) -> None:
    """
    How the AVX-512 decode kernels walk the rows: 'auto' (the CPU's choice), 'streams' or 'adjacent'.
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
def window_order(grid_thw: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], merge: typing.SupportsInt | typing.SupportsIndex, window: typing.SupportsInt | typing.SupportsIndex) -> tuple:
    """
    Qwen2.5-VL's window layout: (token_order, window_bounds) for windows of `window` merged tokens
    """
