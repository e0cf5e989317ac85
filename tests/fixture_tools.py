"""Variants of the fixture GGUFs that the registry, store and projector tests need, made in temporary
folders: Ollama's single-file Qwen2.5-VL layout, a text file without a chat template, a projector of
another width. Each is written once per test session."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import subprocess_env


def ollama_qwen25vl(fixtures: Path, tmp_path_factory: pytest.TempPathFactory, *, chat_template: bool = True) -> Path:
    """The qwen25vl-tiny pair in Ollama's single-file layout (text and `v.*` vision tensors in one GGUF,
    `general.architecture = qwen25vl`), written by the fixtures' own tool; without `tokenizer.chat_template`
    (the tool's --no-chat-template, as blobs whose template is a registry layer) when chat_template is False."""
    name = "qwen25vl-tiny-ollama.gguf" if chat_template else "qwen25vl-tiny-ollama-no-template.gguf"
    out = tmp_path_factory.getbasetemp() / "ollama-layout" / name
    if not out.is_file():
        out.parent.mkdir(exist_ok=True)
        partial = out.with_suffix(".partial")
        pair = fixtures / "gguf" / "qwen25vl"
        flags = [] if chat_template else ["--no-chat-template"]
        subprocess.run([sys.executable, str(fixtures / "tools" / "make_ollama_qwen25vl.py"),
                        str(pair / "qwen25vl-tiny-Q8_0.gguf"), str(pair / "mmproj-qwen25vl-tiny-F16.gguf"), str(partial),
                        *flags], check=True, capture_output=True, env=subprocess_env(), timeout=300)
        partial.rename(out)
    return out


def patched_copy(source: Path, destination: Path, old: bytes, new: bytes) -> Path:
    """A copy of a GGUF with one byte string of its header replaced by another of the same length,
    which keeps every offset valid: a key renamed (so the file no longer has it) or a number changed."""
    assert len(old) == len(new)
    data = source.read_bytes()
    assert data.count(old) == 1, f"{old!r} occurs {data.count(old)} times in {source}"
    destination.write_bytes(data.replace(old, new))
    return destination


def without_chat_template(source: Path, destination: Path) -> Path:
    """The text GGUF with its `tokenizer.chat_template` key renamed away, as Ollama blobs come."""
    return patched_copy(source, destination, b"tokenizer.chat_template", b"tokenizer.chat_templatX")


def with_projection_dim(source: Path, destination: Path, width: int) -> Path:
    """The mmproj with `clip.vision.projection_dim` (a uint32 of 256 in the fixtures) set to `width`."""
    key = b"clip.vision.projection_dim"
    uint32 = (4).to_bytes(4, "little")
    return patched_copy(source, destination, key + uint32 + (256).to_bytes(4, "little"),
                        key + uint32 + width.to_bytes(4, "little"))


def link_into(folder: Path, *files: Path) -> list[Path]:
    """Symlinks to `files` under their own names in `folder`: a shared model folder."""
    return link_as(folder, {file.name: file for file in files})


def link_as(folder: Path, files: dict[str, Path]) -> list[Path]:
    """Symlinks (copies where links are not allowed) in `folder`, named as the keys, to the values."""
    folder.mkdir(parents=True, exist_ok=True)
    links = []
    for name, file in files.items():
        link = folder / name
        try:
            link.symlink_to(file)
        except OSError:
            shutil.copyfile(file, link)
        links.append(link)
    return links


def ollama_qwen3vl_like(fixtures: Path, destination: Path) -> Path:
    """The tiny Qwen3-VL as ONE file with its vision tensors (`v.*`) beside the text ones and
    `general.architecture = qwen3vl`, the shape of Ollama's own qwen3-vl blobs. Their real key and tensor
    layout differs from llama.cpp's; what matters here is that we refuse the file rather than load it."""
    import gguf

    text = gguf.GGUFReader(fixtures / "gguf" / "qwen3vl" / "qwen3vl-tiny-Q8_0.gguf")
    vision = gguf.GGUFReader(fixtures / "gguf" / "qwen3vl" / "mmproj-qwen3vl-tiny-F16.gguf")
    writer = gguf.GGUFWriter(destination, "qwen3vl")
    for name, field in text.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        sub_type = field.types[1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), field.types[0], sub_type)
    for tensor in [*text.tensors, *(t for t in vision.tensors if t.name.startswith("v."))]:
        writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return destination
