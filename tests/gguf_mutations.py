"""Seeded mutations of GGUF files, and a child process that loads them: the fuzz suite's machinery.

The seeds are small but complete: a Qwen2-VL text model with a cut-down vocabulary of the fixture's
(so a load builds a real tokenizer in milliseconds) and a projector that fits it. Each mutation is a
function of (seed file, random generator) that changes what a damaged or hostile file would: header
bytes, lengths, counts, dimensions, offsets, type ids, the version, or where the file ends.

Loads run in a child process under RLIMIT_AS, one file at a time with a timeout, so that a crash, a
hang or a runaway allocation is seen as what it is instead of taking the test run down.
"""
from __future__ import annotations

import json
import os
import selectors
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from qvl_local.gguf_file import GGUFFile

TOKEN_TYPE_CONTROL = 3
U64_VALUES = (0, 1, 2**31, 2**32 + 1, 2**40, 2**62, 2**63, 2**64 - 1)


# -- seeds ------------------------------------------------------------------------------------------


def write_small_text_model(path: Path, fixture_text: Path, *, hidden: int = 64, vocab_head: int = 320) -> Path:
    """A 2-block qwen2vl text model (hidden 64, Q8_0 matrices) with the fixture's first `vocab_head`
    tokens, its special tokens and the merges among them, and its chat template."""
    source = GGUFFile(fixture_text)
    tokens = source.require("tokenizer.ggml.tokens")
    types = [int(t) for t in source.require("tokenizer.ggml.token_type")]
    kept = list(range(vocab_head)) + [i for i, t in enumerate(types) if i >= vocab_head and t == TOKEN_TYPE_CONTROL]
    new_id = {old: new for new, old in enumerate(kept)}
    vocab = [tokens[i] for i in kept]
    known = set(vocab)
    merges = [m for m in source.require("tokenizer.ggml.merges")
              if len(pair := m.split(" ")) == 2 and {pair[0], pair[1], pair[0] + pair[1]} <= known]

    arch, heads, kv_heads, layers, mlp = "qwen2vl", 4, 2, 2, 128
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_uint32(f"{arch}.block_count", layers)
    writer.add_uint32(f"{arch}.context_length", 4096)
    writer.add_uint32(f"{arch}.embedding_length", hidden)
    writer.add_uint32(f"{arch}.feed_forward_length", mlp)
    writer.add_uint32(f"{arch}.attention.head_count", heads)
    writer.add_uint32(f"{arch}.attention.head_count_kv", kv_heads)
    writer.add_array(f"{arch}.rope.dimension_sections", [2, 3, 3, 0])
    writer.add_float32(f"{arch}.rope.freq_base", 1_000_000.0)
    writer.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(vocab)
    writer.add_token_types([types[i] for i in kept])
    writer.add_token_merges(merges)
    writer.add_eos_token_id(new_id[int(source.require("tokenizer.ggml.eos_token_id"))])
    writer.add_pad_token_id(new_id[int(source.require("tokenizer.ggml.padding_token_id"))])
    writer.add_chat_template(source.require("tokenizer.chat_template"))
    kv_width = kv_heads * hidden // heads
    shapes = {"token_embd.weight": (len(vocab), hidden)}
    for i in range(layers):
        shapes |= {f"blk.{i}.attn_norm.weight": (hidden,), f"blk.{i}.attn_q.weight": (hidden, hidden),
                   f"blk.{i}.attn_q.bias": (hidden,), f"blk.{i}.attn_k.weight": (kv_width, hidden),
                   f"blk.{i}.attn_k.bias": (kv_width,), f"blk.{i}.attn_v.weight": (kv_width, hidden),
                   f"blk.{i}.attn_v.bias": (kv_width,), f"blk.{i}.attn_output.weight": (hidden, hidden),
                   f"blk.{i}.ffn_norm.weight": (hidden,), f"blk.{i}.ffn_gate.weight": (mlp, hidden),
                   f"blk.{i}.ffn_up.weight": (mlp, hidden), f"blk.{i}.ffn_down.weight": (hidden, mlp)}
    shapes["output_norm.weight"] = (hidden,)
    rng = np.random.default_rng(0)
    for name, shape in shapes.items():
        values = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
        if len(shape) == 1:
            writer.add_tensor(name, values + np.float32("norm" in name))
        else:
            quantized = gguf.quants.quantize(values, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, quantized, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# -- where the fields are -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldMap:
    """Byte offsets of the mutable fields of a GGUF file, found with gguf-py's reader."""

    size: int
    data_start: int  # where the tensor data begins: everything before is header and metadata
    counts: tuple[int, ...]  # the tensor count and the metadata count (u64)
    string_lengths: tuple[int, ...]  # key lengths, string value lengths, string array element lengths (u64)
    array_lengths: tuple[int, ...]  # (u64)
    value_types: tuple[int, ...]  # metadata value and array element types (u32)
    scalar_values: tuple[tuple[int, int], ...]  # (offset, size in bytes) of numeric metadata values
    tensor_dim_counts: tuple[int, ...]  # (u32)
    tensor_dims: tuple[int, ...]  # (u64)
    tensor_types: tuple[int, ...]  # (u32)
    tensor_offsets: tuple[int, ...]  # (u64), relative to data_start in the file's own terms

    @classmethod
    def of(cls, path: Path) -> FieldMap:
        reader = gguf.GGUFReader(path)
        string_lengths, array_lengths, value_types, scalar_values = [], [], [], []
        for field in reader.fields.values():
            if field.name.startswith("GGUF."):
                continue
            at = _part_offsets(field)
            string_lengths.append(at[0])
            value_types.append(at[2])
            if field.types[0] == gguf.GGUFValueType.STRING:
                string_lengths.append(at[3])
            elif field.types[0] != gguf.GGUFValueType.ARRAY:
                scalar_values.append((at[3], field.parts[3].nbytes))
            elif field.types[0] == gguf.GGUFValueType.ARRAY:
                value_types.append(at[3])
                array_lengths.append(at[4])
                if field.types[-1] == gguf.GGUFValueType.STRING:
                    string_lengths.extend(at[5:5 + 2 * 8:2])  # the first few elements' lengths
        dim_counts, dims, types, offsets = [], [], [], []
        for tensor in reader.tensors:
            at = _part_offsets(tensor.field)
            string_lengths.append(at[0])
            dim_counts.append(at[2])
            dims.extend(at[3] + 8 * d for d in range(len(tensor.field.parts[3])))
            types.append(at[4])
            offsets.append(at[5])
        return cls(int(reader.data.size), int(reader.data_offset), (8, 16), tuple(string_lengths), tuple(array_lengths),
                   tuple(value_types), tuple(scalar_values), tuple(dim_counts), tuple(dims), tuple(types), tuple(offsets))


def _part_offsets(field) -> list[int]:
    offsets, at = [], int(field.offset)
    for part in field.parts:
        offsets.append(at)
        at += part.nbytes
    return offsets


# -- mutations ----------------------------------------------------------------------------------------------

Mutation = Callable[[bytearray, FieldMap, np.random.Generator], bytearray]


def _u64(rng: np.random.Generator, current: int) -> int:
    return int(rng.choice([*U64_VALUES, current + 1, max(current - 1, 0), current * 2, int(rng.integers(0, 2**63))]))


def _put(data: bytearray, at: int, fmt: str, value: int) -> bytearray:
    data[at:at + struct.calcsize(fmt)] = struct.pack(fmt, value & (2 ** (8 * struct.calcsize(fmt)) - 1))
    return data


def _get(data: bytearray, at: int, fmt: str) -> int:
    return struct.unpack_from(fmt, data, at)[0]


def _pick(rng: np.random.Generator, places: tuple[int, ...]) -> int:
    return int(places[int(rng.integers(len(places)))])


def flip_header_bytes(data, fields, rng):
    for _ in range(int(rng.integers(1, 9))):
        data[int(rng.integers(0, fields.data_start))] = int(rng.integers(0, 256))
    return data


def truncate(data, fields, rng):
    return data[: int(rng.integers(0, len(data)))]


def absurd_count(data, fields, rng):
    at = _pick(rng, fields.counts)
    return _put(data, at, "<Q", _u64(rng, _get(data, at, "<Q")))


def absurd_string_length(data, fields, rng):
    at = _pick(rng, fields.string_lengths)
    return _put(data, at, "<Q", _u64(rng, _get(data, at, "<Q")))


def absurd_array_length(data, fields, rng):
    at = _pick(rng, fields.array_lengths)
    return _put(data, at, "<Q", _u64(rng, _get(data, at, "<Q")))


def wrong_value_type(data, fields, rng):
    return _put(data, _pick(rng, fields.value_types), "<I", int(rng.choice([*range(16), 2**31, 2**32 - 1])))


def odd_metadata_value(data, fields, rng):
    """A number in the metadata (a size, a count, an epsilon) set to an extreme bit pattern."""
    at, size = fields.scalar_values[int(rng.integers(len(fields.scalar_values)))]
    patterns = [b"\x00" * size, b"\xff" * size, b"\x7f" + b"\xff" * (size - 1), b"\x80" + b"\x00" * (size - 1),
                (1).to_bytes(size, "little"), bytes(rng.integers(0, 256, size, dtype=np.uint8))]
    if size in (4, 8):  # NaN and infinity, should the value be a float
        patterns += [struct.pack("<f" if size == 4 else "<d", value) for value in (float("nan"), float("inf"), -1.0)]
    pattern = patterns[int(rng.integers(len(patterns)))]
    data[at:at + size] = pattern[::-1] if pattern[:1] in (b"\x7f", b"\x80") else pattern
    return data


def absurd_dims(data, fields, rng):
    if rng.random() < 0.3:
        return _put(data, _pick(rng, fields.tensor_dim_counts), "<I", int(rng.choice([0, 1, 2, 3, 4, 5, 8, 2**32 - 1])))
    at = _pick(rng, fields.tensor_dims)
    return _put(data, at, "<Q", _u64(rng, _get(data, at, "<Q")))


def wrong_tensor_type(data, fields, rng):
    return _put(data, _pick(rng, fields.tensor_types), "<I", int(rng.choice([*range(42), 2**31, 2**32 - 1])))


def bad_offset(data, fields, rng):
    at = _pick(rng, fields.tensor_offsets)
    other = _get(data, _pick(rng, fields.tensor_offsets), "<Q")
    choices = [other, other + 32, fields.size, fields.size - fields.data_start, 1, 31, _u64(rng, _get(data, at, "<Q"))]
    return _put(data, at, "<Q", int(choices[int(rng.integers(len(choices)))]))


def wrong_version(data, fields, rng):
    return _put(data, 4, "<I", int(rng.choice([0, 1, 2, 4, 5, 2**31, 2**32 - 1])))


MUTATIONS: tuple[Mutation, ...] = (flip_header_bytes, truncate, absurd_count, absurd_string_length, absurd_array_length,
                                   wrong_value_type, odd_metadata_value, absurd_dims, wrong_tensor_type, bad_offset,
                                   wrong_version)


def mutate(original: bytes, fields: FieldMap, seed: int) -> tuple[str, bytes]:
    """The `seed`-th mutation of a file: (what was done, the bytes)."""
    rng = np.random.default_rng(seed)
    mutation = MUTATIONS[seed % len(MUTATIONS)]
    return mutation.__name__, bytes(mutation(bytearray(original), fields, rng))


# -- the loading child -----------------------------------------------------------------------------------------


CHILD = r"""
import json, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import qvl_local
print(json.dumps("ready"), flush=True)
for line in sys.stdin:
    text, mmproj = json.loads(line)
    try:
        qvl_local.load(text, mmproj=mmproj or False, n_ctx=64, n_threads=1)
        outcome = "loaded"
    except qvl_local.ModelFormatError:
        outcome = "ModelFormatError"
    except BaseException as error:
        outcome = f"{type(error).__name__}: {error}"[:400]
    print(json.dumps(outcome), flush=True)
"""


class Loader:
    """A child process that loads model files one at a time; restarted after a crash or a hang."""

    def __init__(self, env: dict[str, str], memory_limit: int, timeout_s: float):
        self.env, self.memory_limit, self.timeout_s = env, memory_limit, timeout_s
        self.process: subprocess.Popen | None = None

    def load(self, text: Path, mmproj: Path | None) -> str:
        """"loaded", "ModelFormatError", another exception's "Type: message", "hang" or "crash (...)"."""
        if self.process is None:
            self._start()
        self.process.stdin.write(json.dumps([str(text), str(mmproj) if mmproj else None]) + "\n")
        self.process.stdin.flush()
        outcome = self._reply(self.timeout_s)
        if outcome in ("hang",) or outcome.startswith("crash"):
            self.close()
        return outcome

    def _start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", CHILD, str(self.memory_limit)], env=self.env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, bufsize=1)
        ready = self._reply(60)
        assert ready == "ready", f"the loading child did not start: {ready}"

    def _reply(self, timeout_s: float) -> str:
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout_s):
                return "hang"
        line = self.process.stdout.readline()
        if not line:
            return f"crash (exit status {self.process.wait()})"
        return json.loads(line)

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def fuzz(loader: Loader, seed_file: Path, workdir: Path, seeds: range, load: Callable[[Path], tuple[Path, Path | None]]
         ) -> dict[str, list[str]]:
    """Loads every mutation of `seed_file`; returns the outcomes that are not "loaded" or
    "ModelFormatError", keyed by kind, each with the seed that makes it."""
    original = seed_file.read_bytes()
    fields = FieldMap.of(seed_file)
    failures: dict[str, list[str]] = {}
    target = workdir / f"mutated-{seed_file.name}"
    for seed in seeds:
        kind, data = mutate(original, fields, seed)
        target.write_bytes(data)
        outcome = loader.load(*load(target))
        if outcome not in ("loaded", "ModelFormatError"):
            failures.setdefault(kind, []).append(f"seed {seed}: {outcome}")
    os.unlink(target)
    return failures
