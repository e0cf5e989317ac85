// Which instruction-set path the kernels take. Chosen once from the CPU's features, overridable with
// the QVL_ISA environment variable (scalar | avx2 | neon) or set_isa() for tests.
#pragma once
#include <string>

namespace qvl {

enum class Isa { Scalar, Avx2, Neon };

const char* isa_name(Isa isa);
bool isa_available(Isa isa);  // compiled in and supported by this CPU
Isa active_isa();
// Throws std::invalid_argument for an unknown name or a path this build/CPU cannot run.
void set_isa(const std::string& name);

}  // namespace qvl
