// Which instruction-set path the kernels take. Chosen once from the CPU's features, overridable with
// the QVL_ISA environment variable (scalar | avx2 | avx512 | amx | neon) or set_isa() for tests.
// avx512 is the avx2 path with AVX-512 (F, BW, VL, VNNI) kernels laid over the parts that are compute
// bound (the matrix-matrix products, the vision attention): every AVX2 kernel also runs under it.
// amx is avx512 with the int8 matrix-matrix products on the AMX tile unit (Sapphire Rapids and later).
#pragma once
#include <string>

namespace qvl {

enum class Isa { Scalar, Avx2, Avx512, Amx, Neon };

// True for the paths that run the AVX2 kernels (avx2, and avx512 / amx which extend it).
inline bool runs_avx2_kernels(Isa isa) { return isa == Isa::Avx2 || isa == Isa::Avx512 || isa == Isa::Amx; }
// True for the paths that run the AVX-512 kernels (avx512, and amx which extends it).
inline bool runs_avx512_kernels(Isa isa) { return isa == Isa::Avx512 || isa == Isa::Amx; }

const char* isa_name(Isa isa);
bool isa_available(Isa isa);  // compiled in and supported by this CPU
Isa active_isa();
// Throws std::invalid_argument for an unknown name or a path this build/CPU cannot run.
void set_isa(const std::string& name);

}  // namespace qvl
