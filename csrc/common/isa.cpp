#include "common/isa.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif
#if defined(QVL_HAVE_AMX_BUILD) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
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

bool cpu_is_amd() {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  return __builtin_cpu_is("amd");
#else
  return false;
#endif
}

bool cpu_has_avx512_vnni() {
#if defined(QVL_HAVE_AVX512_BUILD) && (defined(__x86_64__) || defined(_M_X64))
  __builtin_cpu_init();
  // Every extension the *_avx512.cpp files are compiled with (CMakeLists.txt's QVL_AVX512_OPTIONS).
  return cpu_has_avx2_fma_f16c() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

// AMX needs the CPU's tile unit and the kernel's leave to use its 8 KiB of tile state, which Linux
// grants per process (arch_prctl ARCH_REQ_XCOMP_PERM); asked once, the first time anyone checks.
bool cpu_has_amx_int8() {
#if defined(QVL_HAVE_AMX_BUILD) && defined(__linux__)
  static const bool usable = [] {
    unsigned eax, ebx, ecx, edx;
    if (!cpu_has_avx512_vnni() || !__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    const bool tile = (edx >> 24) & 1, int8 = (edx >> 25) & 1;
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureTileData = 18;
    return tile && int8 && syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureTileData) == 0;
  }();
  return usable;
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
  if (name == "amx") return Isa::Amx;
  if (name == "neon") return Isa::Neon;
  throw std::invalid_argument("unknown ISA '" + name + "' (expected scalar, avx2, avx512, amx or neon)");
}

Isa best_isa() {
  if (cpu_has_amx_int8()) return Isa::Amx;
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

std::atomic<int> decode_row_order{-1};  // -1: the CPU's choice, 0: streams, 1: adjacent rows

}  // namespace

bool decode_tiles_adjacent_rows() {
  static const bool cpu_choice = cpu_is_amd();
  const int order = decode_row_order.load(std::memory_order_relaxed);
  return order < 0 ? cpu_choice : order == 1;
}

void set_decode_row_order(const std::string& order) {
  if (order == "auto") {
    decode_row_order = -1;
  } else if (order == "streams") {
    decode_row_order = 0;
  } else if (order == "adjacent") {
    decode_row_order = 1;
  } else {
    throw std::invalid_argument("decode row order must be 'auto', 'streams' or 'adjacent', not '" + order + "'");
  }
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Amx: return "amx";
    case Isa::Neon: return "neon";
    default: return "scalar";
  }
}

bool isa_available(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return cpu_has_avx2_fma_f16c();
    case Isa::Avx512: return cpu_has_avx512_vnni();
    case Isa::Amx: return cpu_has_amx_int8();
    case Isa::Neon: return cpu_has_neon_dotprod();
  }
  return false;
}

std::vector<Isa> isa_layers(Isa isa) {
  switch (isa) {
    case Isa::Avx2: return {Isa::Scalar, Isa::Avx2};
    case Isa::Avx512: return {Isa::Scalar, Isa::Avx2, Isa::Avx512};
    case Isa::Amx: return {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Amx};
    case Isa::Neon: return {Isa::Scalar, Isa::Neon};
    default: return {Isa::Scalar};
  }
}

Isa active_isa() { return current().load(std::memory_order_relaxed); }

void set_isa(const std::string& name) {
  Isa isa = parse_isa(name);
  if (!isa_available(isa)) throw std::invalid_argument("ISA '" + name + "' is not available on this CPU or build");
  current().store(isa, std::memory_order_relaxed);
}

}  // namespace qvl
