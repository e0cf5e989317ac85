"""The benchmark's outputs: a text table, the JSON record and a PNG chart.

The reference is llama.cpp on a 2-core AVX2 machine of this kind, 2 threads, the same 2B-shaped
model (llama-bench pp512 / tg128, peak RSS with n_ctx 4096; clip for vision).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GB = 1e9
REFERENCE_LLAMA_CPP = {
    "threads": 2,
    "text": {  # quant: (prefill tok/s, decode tok/s, peak RSS GB)
        "F16": (57.9, 13.1, 3.20),
        "Q8_0": (47.6, 14.7, 1.79),
        "Q4_K_M": (61.0, 25.8, 1.75),
        "Q4_0": (51.0, 25.9, 1.80),
    },
    "vision_seconds": {"448x448": 11.8, "1024x683": 53.7},
    "vision_prefill_1024x683_s": 15.4,  # 888 image tokens
    "time_to_first_token_s": 70.0,
}
MARK_NOISY = "*"


def _mark(measurement: dict[str, Any]) -> str:
    return MARK_NOISY if measurement.get("noisy") else ""


def _ratio(ours: float | None, theirs: float | None) -> str:
    return f"{ours / theirs:.2f}x" if ours and theirs else "-"


def decode_read_share(results: dict[str, Any], quant: str, tokens_per_s: float) -> str:
    """Decode's weight reads in GB/s and as a share of the read bandwidth measured around the quant's
    runs: how close to the memory-bound ceiling an engine decodes (empty in records without them)."""
    bytes_per_token = results["meta"].get("decode_bytes_per_token", {}).get(quant)
    bandwidth = results.get("read_bandwidth", {}).get(quant)
    if not bytes_per_token or not bandwidth:
        return ""
    rate = tokens_per_s * bytes_per_token
    return f"{rate / GB:.1f} ({100 * rate / (sum(bandwidth) / len(bandwidth)):.0f}%)"


def text_rows(results: dict[str, Any], with_reference: bool) -> list[list[str]]:
    rows = []
    for quant, engines in results["text"].items():
        for engine, r in engines.items():
            pp, tg = r["prefill"]["tokens_per_s"], r["decode"]["tokens_per_s"]
            row = [quant, engine, f"{r['load']['seconds']:.2f}{_mark(r['load'])}", f"{r['peak_rss_bytes'] / GB:.2f}",
                   f"{pp:.1f}{_mark(r['prefill'])}", f"{tg:.1f}{_mark(r['decode'])}",
                   decode_read_share(results, quant, tg),
                   f"{max(r['prefill']['others_cores'], r['decode']['others_cores']):.2f}"]
            if engine == "ours" and "llama.cpp" in engines:
                theirs = engines["llama.cpp"]
                row.append(f"{_ratio(pp, theirs['prefill']['tokens_per_s'])} / {_ratio(tg, theirs['decode']['tokens_per_s'])}")
            else:
                row.append("")
            if with_reference and engine == "ours" and quant in REFERENCE_LLAMA_CPP["text"]:
                ref_pp, ref_tg, ref_rss = REFERENCE_LLAMA_CPP["text"][quant]
                row.append(f"{_ratio(pp, ref_pp)} / {_ratio(tg, ref_tg)} (ref {ref_pp}/{ref_tg}, {ref_rss} GB)")
            else:
                row.append("")
            rows.append(row)
    return rows


def vision_rows(results: dict[str, Any], with_reference: bool) -> list[list[str]]:
    """One row per vision measurement and precision of ours, with llama.cpp measured in this run and
    the reference figure; ratios are speed ratios (their seconds / our seconds: above 1, we are faster)."""
    engines = results.get("vision")
    if not engines:
        return []
    theirs = engines.get("llama.cpp")
    rows = []
    for engine in [name for name in engines if name.startswith("ours")]:
        ours = engines[engine]
        tag = "" if engine == "ours" else f", {engine.removeprefix('ours ')}"
        cases = [(f"encode {label}{tag}", r, theirs["encode"][label] if theirs else None, "image_tokens",
                  REFERENCE_LLAMA_CPP["vision_seconds"].get(label)) for label, r in ours["encode"].items()]
        ttft = ours["time_to_first_token"]
        cases.append((f"first token ({ttft['image']}){tag}", ttft, theirs["time_to_first_token"] if theirs else None,
                      "prompt_tokens", REFERENCE_LLAMA_CPP["time_to_first_token_s"]))
        for name, r, live, size_key, ref in cases:
            ref = ref if with_reference else None
            rows.append([name, f"{r['seconds']:.2f} s{_mark(r)}", str(r.get(size_key, "?")),
                         f"{live['seconds']:.2f} s{_mark(live)} ({live.get(size_key, '?')})" if live else "",
                         _ratio(live["seconds"], r["seconds"]) if live else "",
                         _ratio(live.get("cpu_seconds"), r.get("cpu_seconds")) if live else "",
                         f"{r['others_cores']:.2f} / {live['others_cores']:.2f}" if live else f"{r['others_cores']:.2f}",
                         f"{ref} s" if ref else "", _ratio(ref, r["seconds"]) if ref else ""])
    ours = engines["ours"]
    live_load = f"{theirs['load']['seconds']:.2f} s, RSS {theirs['peak_rss_bytes'] / GB:.2f} GB" if theirs else ""
    rows.append(["load, peak RSS", f"{ours['load']['seconds']:.2f} s", f"RSS {ours['peak_rss_bytes'] / GB:.2f} GB",
                 live_load, "", "", "", "", ""])
    return rows


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_text(results: dict[str, Any]) -> str:
    meta = results["meta"]
    with_reference = meta["shape"] == "qwen2vl-2b-shape"
    parts = [
        f"qvl_local benchmark: {meta['shape']} model, {meta['n_threads']} threads, {meta['cpu']} ({meta['isa']}), "
        f"load average before {meta['load_average_before'][0]:.2f}, after {meta['load_average_after'][0]:.2f}",
        format_table(["quant", "engine", "load s", "peak RSS GB", "prefill tok/s", "decode tok/s",
                      "decode GB/s (% of read)", "others' cores", "ours/llama.cpp (pp / tg)", "ours/reference (pp / tg)"],
                     text_rows(results, with_reference)),
    ]
    vision = vision_rows(results, with_reference)
    if vision:
        parts.append(format_table([f"vision ({meta['vision_quant']} + F16 mmproj)", "ours", "tokens", "llama.cpp (this run)",
                                   "ours/llama.cpp speed", "by CPU time", "others' cores (ours / llama.cpp)", "reference",
                                   "ours/reference speed"], vision))
    notes = [f"CPU instruction sets: {' '.join(meta.get('cpu_flags', [])) or 'unknown'}; "
             f"text files quantized by {meta.get('quantizer', 'qvl_local.quantize')}"]
    notes += [f"llama.cpp {name}: {note}" for name, note in _llama_notes(results)]
    llama_runs = [*results["text"].values(), results.get("vision", {})]
    systems = {r["system_info"] for engines in llama_runs for r in [engines.get("llama.cpp", {})] if "system_info" in r}
    notes += [f"llama.cpp built for: {info}" for info in sorted(systems)]
    if meta.get("llama_cpp_build") and systems:
        notes.append(f"llama.cpp build flags: {meta['llama_cpp_build']}")
    if notes:
        parts.append("\n".join(notes))
    if not results.get("llama_cpp_version") and meta.get("compare_llama_cpp"):
        parts.append("llama.cpp: llama-cpp-python is not installed (pip install 'qvl_local[llama]'); no live comparison.")
    bandwidth = results.get("read_bandwidth")
    if bandwidth:
        parts.append("read bandwidth (our read loop, before and after each quant's runs): " + "; ".join(
            f"{quant} {' / '.join(f'{value / GB:.1f}' for value in values)} GB/s" for quant, values in bandwidth.items()))
    parts.append(f"{MARK_NOISY} other processes used more than 10% of the cores during this measurement (after one repeat)")
    return "\n\n".join(parts)


def _llama_notes(results: dict[str, Any]) -> list[tuple[str, str]]:
    groups = [(quant, engines) for quant, engines in results["text"].items()] + [("vision", results.get("vision", {}))]
    return [(name, engines["llama.cpp"]["note"]) for name, engines in groups if "note" in engines.get("llama.cpp", {})]


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def draw_chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = results["meta"]
    with_reference = meta["shape"] == "qwen2vl-2b-shape"
    quants = list(results["text"])
    series = _text_series(results, with_reference)
    has_vision = bool(results.get("vision"))
    fig, axes = plt.subplots(1, 4 if has_vision else 3, figsize=(18 if has_vision else 14, 4.8))
    workload = meta["workload"]
    panels = [("prefill", f"prefill tokens/s ({workload['prefill_tokens']}-token prompt)"),
              ("decode", f"decode tokens/s ({workload['decode_tokens']} tokens)"), ("rss", "peak RSS (GB, lower is better)")]
    for ax, (key, title) in zip(axes, panels):
        _grouped_bars(ax, quants, {name: values[key] for name, values in series.items()})
        ax.set_title(title)
    if has_vision:
        _vision_panel(axes[3], results["vision"], with_reference)
    rivals = " vs llama.cpp" if len(series) > 1 else ""
    fig.suptitle(f"qvl_local{rivals} — {meta['shape']}, {meta['n_threads']} threads, {meta['cpu']}", fontsize=11)
    handles, labels = axes[0].get_legend_handles_labels()
    if has_vision:  # the vision panel may have fewer series: take the legend from the widest panel
        vision_handles, vision_labels = axes[3].get_legend_handles_labels()
        handles, labels = (vision_handles, vision_labels) if len(vision_labels) > len(labels) else (handles, labels)
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _text_series(results: dict[str, Any], with_reference: bool) -> dict[str, dict[str, list[float | None]]]:
    series: dict[str, dict[str, list[float | None]]] = {}
    for name in ("ours", "llama.cpp"):
        if not any(name in engines for engines in results["text"].values()):
            continue
        picked = [results["text"][q].get(name) for q in results["text"]]
        series["qvl_local" if name == "ours" else "llama.cpp (this run)"] = {
            "prefill": [r["prefill"]["tokens_per_s"] if r else None for r in picked],
            "decode": [r["decode"]["tokens_per_s"] if r else None for r in picked],
            "rss": [r["peak_rss_bytes"] / GB if r else None for r in picked],
        }
    if with_reference:
        refs = [REFERENCE_LLAMA_CPP["text"].get(q) for q in results["text"]]
        series["llama.cpp (reference)"] = {
            key: [ref[i] if ref else None for ref in refs] for i, key in enumerate(("prefill", "decode", "rss"))
        }
    return series


COLORS = {"qvl_local": "#2b7bba", "qvl_local int8": "#7fb3dc", "llama.cpp (this run)": "#e8883a", "llama.cpp (reference)": "#b5b5b5"}


def _grouped_bars(ax, groups: list[str], series: dict[str, list[float | None]]) -> None:
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        heights = [v or 0.0 for v in values]
        bars = ax.bar(xs, heights, width, label=name, color=COLORS.get(name))
        ax.bar_label(bars, labels=[_short(v) for v in values], fontsize=7, padding=1)
    ax.set_xticks(range(len(groups)), groups)
    ax.margins(y=0.12)  # room for the value labels
    ax.grid(axis="y", alpha=0.3)


def _short(value: float | None) -> str:
    """Three significant figures without exponents: 23363, 57.9, 1.75, 0.012."""
    if not value:
        return ""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _vision_panel(ax, engines: dict[str, Any], with_reference: bool) -> None:
    ours = engines["ours"]
    labels = [f"encode\n{label}" for label in ours["encode"]] + [f"first token\n{ours['time_to_first_token']['image']}"]

    def seconds(result: dict[str, Any]) -> list[float]:
        return [r["seconds"] for r in result["encode"].values()] + [result["time_to_first_token"]["seconds"]]

    series = {"qvl_local": seconds(ours)}
    for name in [name for name in engines if name.startswith("ours ")]:
        series[f"qvl_local {name.removeprefix('ours ')}"] = seconds(engines[name])
    if "llama.cpp" in engines:
        series["llama.cpp (this run)"] = seconds(engines["llama.cpp"])
    if with_reference:
        refs = REFERENCE_LLAMA_CPP["vision_seconds"]
        series["llama.cpp (reference)"] = [refs.get(label) for label in ours["encode"]] + [REFERENCE_LLAMA_CPP["time_to_first_token_s"]]
    _grouped_bars(ax, labels, series)
    ax.set_title("vision seconds (lower is better)")
