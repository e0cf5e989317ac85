// Which instruction-set path the kernels take. Chosen once from the CPU's features, overridable with
// the QVL_ISA environment variable (scalar | avx2 | avx512 | neon) or set_isa() for tests.
// avx512 is the avx2 path with AVX-512 (F, BW, VL, VNNI) kernels laid over the parts that are compute
// bound (the matrix-matrix products, the vision attention): every AVX2 kernel also runs under it.
#pragma once
#include <string>

namespace qvl {

enum class Isa { Scalar, Avx2, Avx512, Neon };

// True for the paths that run the AVX2 kernels (avx2, and avx512 which extends it).
inline bool runs_avx2_kernels(Isa isa) { return isa == Isa::Avx2 || isa == Isa::Avx512; }

const char* isa_name(Isa isa);
bool isa_available(Isa isa);  // compiled in and supported by this CPU
Isa active_isa();
// Throws std::invalid_argument for an unknown name or a path this build/CPU cannot run.
void set_isa(const std::string& name);

}  // namespace qvl
