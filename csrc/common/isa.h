// Which instruction-set path the kernels and ops take. Chosen once from the CPU's features,
// overridable with the QVL_ISA environment variable (scalar | avx2 | avx512 | amx | neon) or set_isa()
// for tests.
// avx512 is the avx2 path with AVX-512 (F, BW, VL, VNNI) kernels laid over the parts that are compute
// bound (the matrix-matrix products, the vision attention): every AVX2 kernel also runs under it.
// amx is avx512 with the int8 matrix-matrix products on the AMX tile unit (Sapphire Rapids and later).
#pragma once
#include <string>
#include <vector>

namespace qvl {

enum class Isa { Scalar, Avx2, Avx512, Amx, Neon };

constexpr int kIsaCount = 5;

// The layers an ISA's tables (kernels/kernel_table.h, ops/op_table.h) are built from, in order:
// scalar, then each path it extends, then its own: avx2 = scalar + avx2; avx512 = avx2's + avx512;
// amx = avx512's + amx; neon = scalar + neon.
std::vector<Isa> isa_layers(Isa isa);

// How the AVX-512 decode kernels of the K-quants walk a matrix's rows (kernels/k_quant_dot_avx512.h,
// where the measurements are): in tiles of adjacent rows (true: AMD CPUs, measured faster on Zen 5) or
// in tiles taking one row from each of 8 streams of consecutive rows (false: elsewhere).
bool decode_tiles_adjacent_rows();
// Overrides that choice (tests, benchmarks): "adjacent", "streams", or "auto" (the CPU's); throws
// std::invalid_argument for another name.
void set_decode_row_order(const std::string& order);

const char* isa_name(Isa isa);
bool isa_available(Isa isa);  // compiled in and supported by this CPU
Isa active_isa();
// Throws std::invalid_argument for an unknown name or a path this build/CPU cannot run.
void set_isa(const std::string& name);

}  // namespace qvl
