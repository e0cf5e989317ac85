#include "common/isa.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace qvl {

namespace {

bool cpu_has_avx2_fma_f16c() {
#if defined(QVL_HAVE_AVX2_BUILD) && (defined(__x86_64__) || defined(_M_X64))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

bool cpu_has_avx512_vnni() {
#if defined(QVL_HAVE_AVX512_BUILD) && (defined(__x86_64__) || defined(_M_X64))
  __builtin_cpu_init();
  return cpu_has_avx2_fma_f16c() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

bool cpu_has_neon_dotprod() {
#if defined(QVL_HAVE_NEON_BUILD) && defined(__aarch64__)
#if defined(__linux__)
  unsigned long caps = getauxval(AT_HWCAP);
  return (caps & HWCAP_ASIMD) && (caps & HWCAP_ASIMDDP) && (caps & HWCAP_FPHP);
#else
  return true;  // Apple silicon: every arm64 Mac has dot product and fp16
#endif
#else
  return false;
#endif
}

Isa parse_isa(const std::string& name) {
  if (name == "scalar") return Isa::Scalar;
  if (name == "avx2") return Isa::Avx2;
  if (name == "avx512") return Isa::Avx512;
  if (name == "neon") return Isa::Neon;
  throw std::invalid_argument("unknown ISA '" + name + "' (expected scalar, avx2, avx512 or neon)");
}

Isa best_isa() {
  if (cpu_has_avx512_vnni()) return Isa::Avx512;
  if (cpu_has_avx2_fma_f16c()) return Isa::Avx2;
  if (cpu_has_neon_dotprod()) return Isa::Neon;
  return Isa::Scalar;
}

Isa initial_isa() {
  const char* forced = std::getenv("QVL_ISA");
  if (forced == nullptr || *forced == '\0') return best_isa();
  Isa isa = parse_isa(forced);
  if (!isa_available(isa)) {
    throw std::runtime_error(std::string("QVL_ISA=") + forced + " is not available on this CPU or build");
  }
  return isa;
}

std::atomic<Isa>& current() {
  static std::atomic<Isa> isa{initial_isa()};
  return isa;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Neon: return "neon";
    default: return "scalar";
  }
}

bool isa_available(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return cpu_has_avx2_fma_f16c();
    case Isa::Avx512: return cpu_has_avx512_vnni();
    case Isa::Neon: return cpu_has_neon_dotprod();
  }
  return false;
}

Isa active_isa() { return current().load(std::memory_order_relaxed); }

void set_isa(const std::string& name) {
  Isa isa = parse_isa(name);
  if (!isa_available(isa)) throw std::invalid_argument("ISA '" + name + "' is not available on this CPU or build");
  current().store(isa, std::memory_order_relaxed);
}

}  // namespace qvl
