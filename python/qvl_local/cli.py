"""`qvl-local`: the command line, a thin layer over the Python API.

Every subcommand turns its arguments into one API call and prints the result; errors become one line
on stderr and a non-zero exit status (1: the command failed, 2: bad usage, 130: interrupted).
Optional parts (model runtime, quantizer, server) are imported only when asked for.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import QvlError
from .threads import MAX_THREADS_PER_CORE

PROG = "qvl-local"

_DESCRIPTION = """\
Run Qwen-VL vision-language models (Qwen2-VL, Qwen2.5-VL, Qwen3-VL) from GGUF files on your own machine.

Models are GGUF files (weights + an mmproj vision projector, or Ollama's single file) or names
pulled from an Ollama registry or Hugging Face (hf.co/{user}/{repo}[:{quant}]) into the Ollama
model folder ($OLLAMA_MODELS, default ~/.ollama/models), so models already pulled by Ollama are
used as they are. `run` and `serve` pull a name that is not there yet.

examples:
  qvl-local run qwen2.5vl:3b --image photo.jpg "What is in this picture?"
  qvl-local run hf.co/ggml-org/Qwen2.5-VL-3B-Instruct-GGUF:Q4_K_M --image a.png --image b.png "What changed?"
  qvl-local run model-Q4_K_M.gguf --mmproj mmproj-F16.gguf --video clip.mp4 --fps 1 "Summarize."
  qvl-local run qwen2.5vl:3b             (chat: one message per line, /bye to quit)
  qvl-local pull hf.co/Qwen/Qwen3-VL-2B-Instruct-GGUF:Q4_K_M
  qvl-local list
  qvl-local show qwen2.5vl:3b
  qvl-local rm qwen2.5vl:3b
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point of `qvl-local` and `python -m qvl_local`; returns the process exit status."""
    parser = build_parser()
    tokens = sys.argv[1:] if argv is None else list(argv)
    try:
        args, extras = parser.parse_known_args(tokens)
        if extras:
            # argparse matches positionals before it sees later options, so `run MODEL --image X PROMPT`
            # leaves PROMPT over; the command's own parser can take them intermixed.
            args = args.command_parser.parse_intermixed_args(tokens[1:])
    except SystemExit as exit_request:  # --help, or a usage error argparse already explained
        return exit_request.code if isinstance(exit_request.code, int) else 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (QvlError, OSError, ValueError) as error:
        if os.environ.get("QVL_DEBUG"):
            raise
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return 1


def _show_warning(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    """Library warnings (e.g. a thread count that was capped) as one line, like the errors."""
    print(f"{PROG}: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _one_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.filename and error.strerror:
        text = f"{error.strerror}: {error.filename}"
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------------
# Arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    store_option = argparse.ArgumentParser(add_help=False)
    store_option.add_argument(
        "--models-dir",
        metavar="DIR",
        help="model store folder (default: $OLLAMA_MODELS or ~/.ollama/models)",
    )
    _add_run(commands, store_option)
    _add_pull(commands, store_option)
    _add_list(commands, store_option)
    _add_rm(commands, store_option)
    _add_show(commands, store_option)
    _add_quantize(commands, store_option)
    _add_serve(commands, store_option)
    return parser


def _command(commands: Any, name: str, handler: Callable[[argparse.Namespace], int], help_text: str,
             parents: Iterable[argparse.ArgumentParser] = (), epilog: str | None = None) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name, help=help_text, description=help_text, parents=list(parents), epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler, command_parser=parser)
    return parser


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a GGUF file, or a model name such as qwen2.5vl:3b or "
                        "hf.co/ggml-org/Qwen2.5-VL-3B-Instruct-GGUF:Q4_K_M (pulled first when not in the store)")
    parser.add_argument("--mmproj", metavar="GGUF", help="vision projector file (default: the pulled model's, "
                        "or the *mmproj*.gguf beside the model file that fits it)")
    parser.add_argument("--no-pull", action="store_true",
                        help="never download: a model name that is not in the store is an error")
    parser.add_argument("--threads", type=_positive_int, metavar="N",
                        help=f"CPU threads (default: all cores; more than {MAX_THREADS_PER_CORE} per core are capped)")
    parser.add_argument("--ctx-size", type=_positive_int, default=4096, metavar="N",
                        help="context length in tokens, prompt + answer (default: %(default)s)")
    parser.add_argument("--min-pixels", type=_positive_int, metavar="N",
                        help="resize images to at least this many pixels (default: the model's)")
    parser.add_argument("--max-pixels", type=_positive_int, metavar="N",
                        help="resize images to at most this many pixels; lower is faster (default: the model's)")
    parser.add_argument("--precision", choices=("fast", "exact", "int8"), default="fast",
                        help="fast: 8-bit activations (as llama.cpp); exact: float, the reference's numbers; "
                             "int8: fast with the projector's float weights as 8-bit blocks too, the quickest "
                             "image encoding (~2%% off in the image embeddings) (default: %(default)s)")


def _add_run(commands: Any, store_option: argparse.ArgumentParser) -> None:
    parser = _command(
        commands, "run", _run, "answer a prompt about images or a video, or chat",
        parents=[store_option],
        epilog="Without PROMPT, reads one message per line and keeps the conversation (the cached\n"
               "prefix is reused, so earlier turns are not computed again). /clear forgets it, /bye quits.\n\n"
               "After an answer, a line on stderr gives the prompt tokens, the time to the first token\n"
               "and the answer's tokens per second (in chat, with --verbose).\n\n"
               "example:\n  qvl-local run qwen2.5vl:3b --image a.png --image b.png \"What changed?\"",
    )
    _add_model_options(parser)
    parser.add_argument("prompt", nargs="?", metavar="PROMPT", help="the question; omit it to chat")
    parser.add_argument("--image", action="append", default=[], metavar="IMG",
                        help="an image file or URL; repeat for several images")
    parser.add_argument("--video", metavar="VID", help="a video file")
    parser.add_argument("--fps", type=_positive_float, metavar="F", help="video frames sampled per second (default: 2)")
    parser.add_argument("--max-tokens", type=_positive_int, metavar="N", help="stop after N new tokens (default: 256)")
    parser.add_argument("--temperature", type=_non_negative_float, metavar="T",
                        help="sampling temperature; 0 is greedy and repeatable (default: 0)")
    parser.add_argument("--seed", type=_non_negative_int, metavar="S", help="random seed for sampling")
    parser.add_argument("--verbose", action="store_true",
                        help="print the prompt tokens, time to first token and tokens/s after every answer")


def _add_pull(commands: Any, store_option: argparse.ArgumentParser) -> None:
    parser = _command(commands, "pull", _pull, "download a model from an Ollama registry or Hugging Face",
                      parents=[store_option],
                      epilog="Blobs already in the store are not downloaded again; an interrupted pull resumes.\n\n"
                             "examples:\n  qvl-local pull qwen2.5vl:3b\n"
                             "  qvl-local pull hf.co/ggml-org/Qwen2.5-VL-3B-Instruct-GGUF:Q4_K_M")
    parser.add_argument("name", metavar="NAME", help="[host/][namespace/]model[:tag], e.g. qwen2.5vl:3b, or "
                        "hf.co/{user}/{repo}[:{quant}] for a Hugging Face GGUF repository")
    parser.add_argument("--registry", metavar="URL",
                        help="registry base URL (default: https://<host of NAME>, i.e. registry.ollama.ai)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_list(commands: Any, store_option: argparse.ArgumentParser) -> None:
    _command(commands, "list", _list, "list the models in the store", parents=[store_option])


def _add_rm(commands: Any, store_option: argparse.ArgumentParser) -> None:
    parser = _command(commands, "rm", _rm, "remove models (blobs another model uses are kept)", parents=[store_option])
    parser.add_argument("names", nargs="+", metavar="NAME")


def _add_show(commands: Any, store_option: argparse.ArgumentParser) -> None:
    parser = _command(commands, "show", _show, "print a model's configuration and metadata", parents=[store_option])
    parser.add_argument("model", metavar="MODEL", help="a GGUF file or a pulled model name")
    parser.add_argument("--mmproj", metavar="GGUF", help="also describe this vision projector file")
    parser.add_argument("--tensors", action="store_true", help="also list every tensor (name, type, shape)")


def _add_quantize(commands: Any, store_option: argparse.ArgumentParser) -> None:
    parser = _command(
        commands, "quantize", _quantize, "write a GGUF with its weights quantized to TYPE", parents=[store_option],
        epilog="TYPE: Q8_0, Q6_K, Q5_K_M, Q5_K_S, Q4_K_M, Q4_K_S, Q5_0, Q5_1, Q4_0, Q4_1, F16, BF16 or F32.\n"
               "Tensor types per file type follow llama-quantize (Q4_K_M: Q6_K for the embeddings and some\n"
               "attn_v/ffn_down layers). A vision projector (mmproj) gets TYPE's base type for its matrices.\n\n"
               "examples:\n  qvl-local quantize model-F16.gguf model-Q4_K_M.gguf Q4_K_M\n"
               "  qvl-local quantize mmproj-F16.gguf mmproj-Q8_0.gguf --type Q8_0",
    )
    parser.add_argument("source", metavar="SRC", help="a GGUF file or a pulled model name")
    parser.add_argument("destination", metavar="DST", help="the GGUF file to write")
    parser.add_argument("type", nargs="?", metavar="TYPE", help="quantization type, e.g. Q8_0, Q4_K_M")
    parser.add_argument("--type", dest="type_option", metavar="TYPE", help="the same as the TYPE argument")
    parser.add_argument("--force", action="store_true", help="replace DST if it exists")
    parser.add_argument("--threads", type=_positive_int, metavar="N", help="CPU threads (default: all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_serve(commands: Any, store_option: argparse.ArgumentParser) -> None:
    parser = _command(commands, "serve", _serve, "serve a model over an OpenAI-compatible HTTP API",
                      parents=[store_option],
                      epilog="Endpoints: POST /v1/chat/completions, GET /v1/models, GET /health. Requests run one\n"
                             "at a time; a conversation that continues reuses the cached prefix.\n\n"
                             "example:\n  QVL_API_KEY=secret qvl-local serve qwen2.5vl:3b --port 8000 --media-dir ~/videos")
    _add_model_options(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=_port, default=8000, help="port to listen on (default: %(default)s)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a --host other machines can reach (set an API key too)")
    parser.add_argument("--api-key", metavar="KEY",
                        help="require 'Authorization: Bearer KEY' (default: $QVL_API_KEY; none when unset)")
    parser.add_argument("--media-dir", metavar="DIR",
                        help="let requests read local files (file:// URLs: videos, images) under DIR only")
    parser.add_argument("--max-queue", type=_positive_int, default=8, metavar="N",
                        help="requests accepted at once, the running one included; more get 503 (default: %(default)s)")


def _number(convert: Callable[[str], Any], check: Callable[[Any], bool], wanted: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, lambda v: v > 0, "a positive integer")
_non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _number(float, lambda v: v > 0, "a positive number")
_non_negative_float = _number(float, lambda v: v >= 0, "a number >= 0")
_port = _number(int, lambda v: 0 < v < 65536, "a port number (1-65535)")


# ---------------------------------------------------------------------------------------------------
# Commands


def _run(args: argparse.Namespace) -> int:
    model = _load_model(args)
    media = _media_parts(args)
    generation = {
        key: value
        for key, value in (("max_new_tokens", args.max_tokens), ("temperature", args.temperature), ("seed", args.seed))
        if value is not None
    }
    if args.prompt is not None:
        messages = [{"role": "user", "content": [*media, {"type": "text", "text": args.prompt}]}]
        _answer(model, messages, generation, show_stats=True)
        return 0
    return _chat(model, media, generation, show_stats=args.verbose)


def _load_model(args: argparse.Namespace) -> Any:
    from .projector import AmbiguousProjectorError, NoFittingProjectorError

    load = _optional_feature("qvl_local.model", "load", "running a model")
    try:
        return load(
            args.model,
            mmproj=args.mmproj,
            n_threads=args.threads,
            n_ctx=args.ctx_size,
            min_pixels=args.min_pixels,
            max_pixels=args.max_pixels,
            precision=args.precision,
            models_dir=args.models_dir,
            pull=not args.no_pull,
        )
    except AmbiguousProjectorError as error:
        raise QvlError(error.describe("choose one with --mmproj")) from None
    except NoFittingProjectorError as error:
        raise QvlError(error.describe("name the right one with --mmproj")) from None


def _media_parts(args: argparse.Namespace) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "image", "image": image} for image in args.image]
    if args.video:
        video: dict[str, Any] = {"type": "video", "video": args.video}
        if args.fps is not None:
            video["fps"] = args.fps
        parts.append(video)
    return parts


def _answer(model: Any, messages: list[dict[str, Any]], generation: dict[str, Any], *, show_stats: bool) -> str:
    """Stream the answer to stdout, as the model writes it; with show_stats, then a line of figures to
    stderr (so a piped answer stays clean). Returns the whole answer."""
    from .chat import render_chat

    started = time.perf_counter()
    rendered = render_chat(messages, template=model.tokenizer.chat_template)
    prepared = model.prepare_prompt(rendered.prompt, rendered.images, rendered.videos)
    stats = AnswerStats(prompt_tokens=len(prepared), started=started)
    received = []
    for text, token in model.generate(prepared, stream=True, **generation):
        stats.record(token)
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()
            received.append(text)
    sys.stdout.write("\n")
    sys.stdout.flush()
    if show_stats:
        print(stats.summary(), file=sys.stderr)
    return "".join(received)


@dataclass
class AnswerStats:
    """The figures `llama-cli` and `ollama run --verbose` users look at: prompt length, time to the
    first token (media preprocessing, vision encoder and prefill included: the wait the user sees)
    and the decode rate from the first token to the last."""

    prompt_tokens: int
    started: float  # time.perf_counter() before the prompt was built
    generated: int = 0
    first_token_at: float | None = None
    last_token_at: float | None = None

    def record(self, token_id: int) -> None:
        if token_id < 0:
            return  # text held back until the end (a partial stop string), not a new token
        now = time.perf_counter()
        if self.first_token_at is None:
            self.first_token_at = now
        self.last_token_at = now
        self.generated += 1

    def summary(self) -> str:
        prompt = f"prompt {self.prompt_tokens} tokens"
        if self.first_token_at is None or self.last_token_at is None:
            return f"{prompt}, no new tokens"
        first = f"first token after {self.first_token_at - self.started:.2f} s"
        decode_time = self.last_token_at - self.first_token_at
        if self.generated < 2 or decode_time <= 0:
            return f"{prompt}, {first}, {self.generated} token"
        rate = (self.generated - 1) / decode_time
        return f"{prompt}, {first}, {self.generated} tokens at {rate:.1f} tokens/s"


def _chat(model: Any, media: list[dict[str, Any]], generation: dict[str, Any], *, show_stats: bool) -> int:
    """One user message per input line; the images/video given on the command line go with the first."""
    interactive = sys.stdin.isatty()
    if interactive:
        print("Chat: type a message and press Enter; /clear forgets the conversation, /bye quits.", file=sys.stderr)
    history: list[dict[str, Any]] = []
    pending_media = media
    while True:
        try:
            line = input(">>> " if interactive else "")
        except EOFError:
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/bye", "/exit"):
            break
        if text == "/clear":
            history.clear()
            continue
        history.append({"role": "user", "content": [*pending_media, {"type": "text", "text": text}]})
        pending_media = []
        answer = _answer(model, history, generation, show_stats=show_stats)
        history.append({"role": "assistant", "content": answer})
    return 0


def _pull(args: argparse.Namespace) -> int:
    from .registry import pull

    result = pull(args.name, registry=args.registry, models_dir=args.models_dir,
                  progress=False if args.quiet else None)
    print(f"pulled {result.name.short} ({format_size(result.downloaded_bytes)} downloaded, "
          f"{format_size(result.reused_bytes)} already present)")
    return 0


def _list(args: argparse.Namespace) -> int:
    from .store import ModelStore

    rows = [
        (entry.name.short, format_size(entry.size), entry.quantization or "?", _format_age(entry.modified))
        for entry in ModelStore(args.models_dir).list_models()
    ]
    _print_table(("NAME", "SIZE", "QUANT", "MODIFIED"), rows)
    return 0


def _rm(args: argparse.Namespace) -> int:
    from .store import ModelStore

    store = ModelStore(args.models_dir)
    for name in args.names:
        deleted = store.remove(name)
        print(f"deleted {name} ({len(deleted)} blob{'s' if len(deleted) != 1 else ''} removed)")
    return 0


def _show(args: argparse.Namespace) -> int:
    from .store import ModelStore, resolve_model

    resolved = resolve_model(args.model, models_dir=args.models_dir)
    _describe_gguf("model", resolved.model_path, tensors=args.tensors)
    mmproj = args.mmproj or resolved.projector_path
    if mmproj:
        _describe_gguf("projector", Path(mmproj), tensors=args.tensors)
    if resolved.from_store:
        _describe_layers(ModelStore(args.models_dir), args.model)
    return 0


def _describe_gguf(title: str, path: Path, *, tensors: bool) -> None:
    from .store import read_gguf_header

    header = read_gguf_header(path)
    print(f"{title}")
    print(f"  path          {path}")
    print(f"  architecture  {header.architecture or '?'}")
    print(f"  file type     {header.file_type_name or '?'}")
    histogram = ", ".join(f"{kind} {count}" for kind, count in sorted(header.tensor_type_histogram().items()))
    print(f"  tensors       {len(header.tensors)} ({histogram})")
    vision_tensors = sum(tensor.name.startswith("v.") for tensor in header.tensors)
    if vision_tensors and header.architecture != "clip":
        print(f"  vision        in this file ({vision_tensors} v.* tensors: no projector file needed)")
    for key, value in header.metadata.items():
        if key.startswith("tokenizer.") and key not in ("tokenizer.ggml.model", "tokenizer.ggml.tokens"):
            continue  # token lists, merges and the chat template would drown the rest
        if key == "general.file_type":
            continue
        print(f"  {key:<44} {_format_value(value)}")
    if tensors:
        for tensor in header.tensors:
            print(f"    {tensor.name:<40} {tensor.type_name:<6} {list(tensor.shape)}")


def _format_value(value: object) -> str:
    from .store import GGUFArray

    if isinstance(value, GGUFArray):
        return f"[{value.length} x {value.element_type}]"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(_format_value(item) for item in value) + "]"
    return str(value)


def _describe_layers(store: Any, text: str) -> None:
    from .store import (LICENSE_MEDIA_TYPE, PARAMS_MEDIA_TYPE, SYSTEM_MEDIA_TYPE, TEMPLATE_MEDIA_TYPE,
                        jinja_template_or_none)

    name = store.find(text)
    manifest = store.read_manifest(name)
    print(f"name            {name}")
    for title, media_type in (("params", PARAMS_MEDIA_TYPE), ("system", SYSTEM_MEDIA_TYPE),
                              ("template", TEMPLATE_MEDIA_TYPE), ("license", LICENSE_MEDIA_TYPE)):
        content = store.read_text_layer(manifest, media_type)
        if content is None:
            continue
        if media_type == TEMPLATE_MEDIA_TYPE and jinja_template_or_none(content) is None:
            title += " (an Ollama Go template: not used, the model's own chat template applies)"
        print(f"{title}")
        for line in content.strip().splitlines()[:8]:
            print(f"  {line}")


def _quantize(args: argparse.Namespace) -> int:
    from .store import resolve_model
    from .threads import thread_count

    quantize_gguf = _optional_feature("qvl_local.quantize", "quantize_gguf", "quantization")
    if args.type and args.type_option and args.type.upper() != args.type_option.upper():
        raise ValueError(f"two different types given: {args.type} and --type {args.type_option}")
    quant_type = args.type or args.type_option
    if not quant_type:
        raise ValueError("no quantization type given (e.g. Q4_K_M, as TYPE or --type)")
    if Path(args.destination).exists() and not args.force:
        raise QvlError(f"output file exists: {args.destination} (--force replaces it)")
    source = resolve_model(args.source, models_dir=args.models_dir).model_path
    report = quantize_gguf(source, args.destination, quant_type, overwrite=args.force,
                           progress=not args.quiet, n_threads=thread_count(args.threads))
    for warning in report.warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    print(f"wrote {report.destination} ({report.file_type.name}, {format_size(report.destination_bytes)} from "
          f"{format_size(report.source_bytes)}, {len(report.tensors)} tensors, {report.seconds:.1f} s)")
    rows = [(summary.type, str(summary.count), format_size(summary.nbytes),
             f"{100 * summary.relative_rms_error:.2f}%", f"{100 * summary.max_relative_rms_error:.2f}%")
            for summary in report.by_type()]
    _print_table(("TYPE", "TENSORS", "SIZE", "REL RMS ERROR", "WORST TENSOR"), rows)
    return 0


def _serve(args: argparse.Namespace) -> int:
    serve = _optional_feature("qvl_local.server", "serve", "the HTTP server")
    check_bind_host = _optional_feature("qvl_local.server", "check_bind_host", "the HTTP server")
    check_bind_host(args.host, allow_remote=args.allow_remote)  # before the model takes time to load
    model = _load_model(args)
    # A GGUF path is named by its file stem, a pulled model by the name it was pulled as.
    model_id = Path(args.model).stem if args.model.endswith(".gguf") else args.model
    serve(model, args.host, args.port, model_id=model_id, api_key=args.api_key or os.environ.get("QVL_API_KEY"),
          media_dir=args.media_dir, allow_remote=args.allow_remote, max_queue=args.max_queue)
    return 0


def _optional_feature(module_name: str, attribute: str, feature: str) -> Any:
    """Import a part that may be absent from this installation, with a message saying what is missing."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as missing:
        if missing.name is None or missing.name.split(".")[0] in ("qvl_local", module_name.split(".")[0]):
            raise QvlError(f"{feature} is not available in this installation ({missing.name or module_name} "
                           f"is missing)") from None
        raise QvlError(f"{feature} needs the Python package {missing.name!r}: pip install {missing.name}") from None
    except ImportError as broken:  # e.g. a compiled extension built for another Python or incomplete
        raise QvlError(f"{feature} is not available: {module_name} failed to import ({broken})") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise QvlError(f"{feature} is not available in this installation ({module_name}.{attribute} is missing)") from None


# ---------------------------------------------------------------------------------------------------
# Formatting


def format_size(size: float) -> str:
    """Bytes in decimal units, as Ollama shows them: 366 B, 46.3 MB, 3.1 GB."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _format_age(timestamp: float) -> str:
    seconds = int(max(time.time() - timestamp, 0))
    for unit, length, limit in (("second", 1, 60), ("minute", 60, 3600), ("hour", 3600, 86400),
                                ("day", 86400, 86400 * 30)):
        if seconds < limit:
            count = seconds // length
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return time.strftime("%Y-%m-%d", time.localtime(timestamp))


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _version() -> str:
    from . import __version__

    return __version__
