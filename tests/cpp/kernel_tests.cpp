// Standalone kernel checks, run natively and (cross-compiled) under qemu-aarch64 for the NEON path:
// on every ISA this CPU runs, for every type, against the scalar reference and a double-precision
// reference. Exit status 0 when every check passes. Limits (see tests/test_kernels.py for the why):
//   dequantize: bit-exact with the scalar reference;
//   Exact matmul: |out - ref| <= 1e-5 * sum|x||w| (ref in double on the dequantized weights);
//   Fast matmul: |out - ref| <= sum_i |w_i| * amax(block of x_i) / 254 + 1e-5 * sum|x||w|;
//   Fast on float weights where the ISA multiplies them as 16-bit blocks (n >= 16, int16_blocks.h):
//     |out - ref| <= 1.01 * sum_i (|w_i| hx_i + |x_i| hw_i + hx_i hw_i) + 1e-5 * sum|x||w|, with hx, hw
//     half a level step (amax of the block / 16382); elsewhere the Exact limit;
//   Fast on an ISA vs Fast on scalar: <= 2e-6 * sum|x||w| (same integers, other summation order), where
//     both take the same path (float weights: the ISAs without the 16-bit GEMM keep float math).
// The matrix-matrix (panel GEMM) path, which Fast takes from 16 activation rows on, gets cases of its
// own (partial panels, several blocks) and a check that every non-scalar ISA has it for every
// quantized type, so those cases cannot silently fall back to the row-dot kernels.
// The model's ops (ops/op_table.h) on every ISA against the scalar reference, with the limits the
// Python tests state for the x86 paths (tests/test_ops_isa.py, test_causal_attention_isa.py,
// test_vision_attention_isa.py): norms, RoPE <= 1e-6 of the largest |output|; softmax <= 2 n 2^-24
// of the largest output (twice the bound of the reference's sequential sum); activations <= 1e-6 *
// max(1, |x|) per value; attention <= 1e-5 of the largest |output|. Qwen3-VL's ops among them: the
// per-head q/k norm (rms_norm_heads), interleaved M-RoPE, GELU-tanh. Row lengths leave a
// partial vector on every ISA; attention shapes leave partial query groups and key blocks.
#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <numeric>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/ggml_types.h"
#include "common/isa.h"
#include "common/thread_pool.h"
#include "kernels/kernel_table.h"
#include "kernels/kernels.h"
#include "model/kv_cache.h"
#include "model/mrope.h"
#include "ops/causal_attention.h"
#include "ops/op_table.h"
#include "ops/ops.h"
#include "ops/vision_attention.h"

namespace {

constexpr double kExactRelative = 1e-5;
constexpr double kFastVsScalarRelative = 2e-6;

const qvl::GgmlType kTypes[] = {qvl::GgmlType::F32,  qvl::GgmlType::F16,  qvl::GgmlType::BF16, qvl::GgmlType::Q8_0,
                                qvl::GgmlType::Q4_0, qvl::GgmlType::Q4_1, qvl::GgmlType::Q5_0, qvl::GgmlType::Q5_1,
                                qvl::GgmlType::Q4_K, qvl::GgmlType::Q5_K, qvl::GgmlType::Q6_K};

int failures = 0;
int checks = 0;

void check(bool ok, const std::string& what) {
  ++checks;
  if (!ok) {
    ++failures;
    std::printf("FAIL %s\n", what.c_str());
  }
}

bool is_float_type(qvl::GgmlType type) {
  return type == qvl::GgmlType::F32 || type == qvl::GgmlType::F16 || type == qvl::GgmlType::BF16;
}

bool is_k_quant(qvl::GgmlType type) { return qvl::type_geometry(type)->block_elems == 256; }

int64_t activation_block(qvl::GgmlType type) { return is_k_quant(type) ? 256 : 32; }

std::vector<float> random_floats(size_t count, float scale, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> values(count);
  for (float& v : values) v = normal(rng);
  return values;
}

struct Case {
  qvl::GgmlType type;
  int64_t rows, k, n;
  std::vector<uint8_t> weight;
  std::vector<float> x;
  std::vector<float> dequantized;  // by the scalar reference
  qvl::WeightView view() const { return {type, rows, k, weight.data()}; }
};

Case make_case(qvl::GgmlType type, int64_t rows, int64_t k, int64_t n, std::mt19937& rng) {
  Case c{type, rows, k, n, {}, {}, {}};
  std::vector<float> w = random_floats(static_cast<size_t>(rows * c.k), 0.1f, rng);
  c.weight.resize(static_cast<size_t>(rows) * qvl::row_bytes(type, c.k));
  qvl::set_isa("scalar");
  qvl::quantize_rows(type, w.data(), rows, c.k, c.weight.data());
  c.dequantized.resize(w.size());
  qvl::dequantize_rows(c.view(), 0, rows, c.dequantized.data());
  c.x = random_floats(static_cast<size_t>(n * c.k), 1.0f, rng);
  return c;
}

void check_dequantize(const Case& c, const std::string& label) {
  std::vector<float> out(c.dequantized.size());
  qvl::dequantize_rows(c.view(), 0, c.rows, out.data());
  check(std::memcmp(out.data(), c.dequantized.data(), out.size() * sizeof(float)) == 0, label + " dequantize");
}

// Whether Fast on this case's float weights takes the 16-bit integer GEMM on the active ISA.
bool takes_int16_gemm(const Case& c) {
  const qvl::TypeKernels& kernels = qvl::type_kernels(qvl::isa_kernels(qvl::active_isa()), c.type);
  return is_float_type(c.type) && kernels.int16_gemm_tile != nullptr && c.n >= 16 && c.k % 32 == 0;
}

void check_matmul(const Case& c, qvl::ThreadPool& pool, const std::string& label, const std::vector<float>& scalar_fast) {
  std::vector<float> exact(static_cast<size_t>(c.n * c.rows)), fast(exact.size());
  qvl::matmul(c.view(), c.x.data(), c.n, exact.data(), qvl::Precision::Exact, pool);
  qvl::matmul(c.view(), c.x.data(), c.n, fast.data(), qvl::Precision::Fast, pool);
  int64_t block = activation_block(c.type);
  const bool int16 = takes_int16_gemm(c);
  double worst_exact = 0, worst_fast = 0, worst_vs_scalar = 0;  // error / limit
  for (int64_t j = 0; j < c.n; ++j) {
    const float* x = c.x.data() + j * c.k;
    for (int64_t r = 0; r < c.rows; ++r) {
      const float* w = c.dequantized.data() + r * c.k;
      double reference = 0, scale = 0, rounding = 0, int16_rounding = 0;
      for (int64_t b = 0; b < c.k; b += block) {
        double amax = 0, weight_amax = 0, weight_sum = 0, act_sum = 0;
        for (int64_t i = b; i < b + block; ++i) {
          reference += static_cast<double>(x[i]) * w[i];
          scale += std::fabs(static_cast<double>(x[i]) * w[i]);
          amax = std::fmax(amax, std::fabs(x[i]));
          weight_amax = std::fmax(weight_amax, std::fabs(w[i]));
          weight_sum += std::fabs(w[i]);
          act_sum += std::fabs(x[i]);
        }
        rounding += weight_sum * amax / 254.0;
        const double hx = amax / 16382.0, hw = weight_amax / 16382.0;
        int16_rounding += 1.01 * (weight_sum * hx + act_sum * hw + block * hx * hw);
      }
      size_t at = static_cast<size_t>(j * c.rows + r);
      double exact_limit = kExactRelative * scale;
      worst_exact = std::fmax(worst_exact, std::fabs(exact[at] - reference) / exact_limit);
      double fast_limit = (is_float_type(c.type) ? (int16 ? int16_rounding : 0.0) : rounding) + exact_limit;
      worst_fast = std::fmax(worst_fast, std::fabs(fast[at] - reference) / fast_limit);
      if (!scalar_fast.empty()) {
        worst_vs_scalar =
            std::fmax(worst_vs_scalar, std::fabs(fast[at] - scalar_fast[at]) / (kFastVsScalarRelative * scale));
      }
    }
  }
  check(worst_exact <= 1.0, label + " exact vs double (error/limit " + std::to_string(worst_exact) + ")");
  check(worst_fast <= 1.0, label + " fast vs double (error/limit " + std::to_string(worst_fast) + ")");
  check(worst_vs_scalar <= 1.0, label + " fast vs scalar (error/limit " + std::to_string(worst_vs_scalar) + ")");
}

std::vector<float> scalar_fast_result(const Case& c, qvl::ThreadPool& pool) {
  std::vector<float> out(static_cast<size_t>(c.n * c.rows));
  qvl::set_isa("scalar");
  qvl::matmul(c.view(), c.x.data(), c.n, out.data(), qvl::Precision::Fast, pool);
  return out;
}

// The scalar Fast result to compare the active ISA's with, or none where the two take different paths
// (float weights on an ISA that keeps float math where the scalar reference takes the 16-bit GEMM).
std::vector<float> comparable_scalar_fast(const Case& c, const std::string& isa, const std::vector<float>& scalar_fast,
                                          bool scalar_int16) {
  if (isa == "scalar" || takes_int16_gemm(c) != scalar_int16) return {};
  return scalar_fast;
}

// The ISA QVL_ISA forces, or every ISA this CPU runs.
std::vector<std::string> isas_to_test() {
  const char* forced = std::getenv("QVL_ISA");
  if (forced != nullptr && *forced != '\0') return {forced};
  std::vector<std::string> names;
  for (qvl::Isa isa : {qvl::Isa::Scalar, qvl::Isa::Avx2, qvl::Isa::Avx512, qvl::Isa::Amx, qvl::Isa::Neon}) {
    if (qvl::isa_available(isa)) names.emplace_back(qvl::isa_name(isa));
  }
  return names;
}

void check_case_on_isas(const Case& c, const std::vector<std::string>& isas, qvl::ThreadPool& pool) {
  std::vector<float> scalar_fast = scalar_fast_result(c, pool);
  const bool scalar_int16 = takes_int16_gemm(c);  // scalar_fast_result left the scalar ISA active
  for (const std::string& isa : isas) {
    qvl::set_isa(isa);
    std::string label = std::string(qvl::type_name(c.type)) + " " + isa + " rows=" + std::to_string(c.rows) +
                        " k=" + std::to_string(c.k) + " n=" + std::to_string(c.n);
    check_dequantize(c, label);
    check_matmul(c, pool, label, comparable_scalar_fast(c, isa, scalar_fast, scalar_int16));
  }
}

// Every quantized type has a matrix-matrix kernel on each ISA but scalar; float weights have the 16-bit
// GEMM exactly on the scalar reference and the ISAs with vpdpwssd (avx512, amx).
void check_gemm_coverage(const std::vector<std::string>& isas) {
  for (const std::string& isa : isas) {
    qvl::set_isa(isa);
    const qvl::IsaKernels& table = qvl::isa_kernels(qvl::active_isa());
    const bool int16_expected = isa == "scalar" || isa == "avx512" || isa == "amx";
    for (qvl::GgmlType type : kTypes) {
      const qvl::TypeKernels& kernels = qvl::type_kernels(table, type);
      const std::string name = std::string(qvl::type_name(type)) + " " + isa;
      if (is_float_type(type)) {
        check((kernels.int16_gemm_tile != nullptr) == int16_expected,
              name + (int16_expected ? " has" : " has no") + " 16-bit GEMM");
      } else if (isa != "scalar") {
        check(kernels.gemm_tile != nullptr, name + " has a matrix-matrix kernel");
      }
    }
  }
}


// ---- The model's ops ----

constexpr double kRowOpRelative = 1e-6;      // norms, softmax, RoPE: of the largest |output|
constexpr double kActivationRelative = 1e-6;  // per value, of max(1, |x|)
constexpr double kAttentionRelative = 1e-5;  // of the largest |output|

using OpRun = std::function<std::vector<float>()>;

// The op's output on `isa` and on scalar: the largest difference over the largest |scalar output|.
// max |actual - expected| / max |expected|.
double relative_difference(const std::vector<float>& actual, const std::vector<float>& expected) {
  // std::max rather than std::fmax in these reductions: GCC 12 for aarch64 stops with an internal
  // compiler error vectorising the latter.
  double worst = 0.0, scale = 0.0;
  for (size_t i = 0; i < expected.size(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(actual[i]) - expected[i]));
    scale = std::max(scale, static_cast<double>(std::fabs(expected[i])));
  }
  return actual.size() == expected.size() ? worst / scale : INFINITY;
}

double relative_to_scalar(const std::string& isa, const OpRun& run) {
  qvl::set_isa("scalar");
  const std::vector<float> expected = run();
  qvl::set_isa(isa);
  return relative_difference(run(), expected);
}

void check_row_ops(const std::string& isa, std::mt19937& rng) {
  for (int64_t n : {1, 7, 37, 80, 1536 + 5}) {
    const std::string label = isa + " n=" + std::to_string(n);
    const std::vector<float> x = random_floats(static_cast<size_t>(3 * n), 2.0f, rng);
    const std::vector<float> weight = random_floats(static_cast<size_t>(n), 1.0f, rng);
    const std::vector<float> bias = random_floats(static_cast<size_t>(n), 1.0f, rng);
    auto rows = [&](auto&& row_fn) {
      std::vector<float> out(x.size());
      for (int64_t r = 0; r < 3; ++r) row_fn(x.data() + r * n, out.data() + r * n);
      return out;
    };
    const double rms = relative_to_scalar(isa, [&] {
      return rows([&](const float* in, float* out) { qvl::rms_norm(in, weight.data(), n, 1e-6f, out); });
    });
    check(rms <= kRowOpRelative, label + " rms_norm (" + std::to_string(rms) + ")");
    const double layer = relative_to_scalar(isa, [&] {
      return rows([&](const float* in, float* out) { qvl::layer_norm(in, weight.data(), bias.data(), n, 1e-6f, out); });
    });
    check(layer <= kRowOpRelative, label + " layer_norm (" + std::to_string(layer) + ")");
    const double softmax = relative_to_scalar(isa, [&] {
      return rows([&](const float* in, float* out) {
        std::copy(in, in + n, out);
        qvl::softmax_in_place(out, n);
      });
    });
    const double softmax_limit = 2.0 * static_cast<double>(n + 2) * std::ldexp(1.0, -24);
    check(softmax <= softmax_limit, label + " softmax (" + std::to_string(softmax) + ")");
  }
}

// Each activation on `isa` against scalar, value by value: |difference| <= 1e-6 * max(1, |x|).
void check_activations(const std::string& isa, std::mt19937& rng) {
  const int64_t n = 1000 + 3;  // a partial vector at the end on every ISA
  std::vector<float> x = random_floats(static_cast<size_t>(n), 3.0f, rng);
  x[0] = 0.0f, x[1] = -12.0f, x[2] = 12.0f, x[3] = -90.0f, x[4] = 90.0f;  // the clamps of exp
  const std::vector<float> up = random_floats(static_cast<size_t>(n), 1.0f, rng);
  struct Activation {
    const char* name;
    std::function<void(float*)> apply;
    std::vector<float> factor;  // what multiplies the activation (silu_mul's up), else none
  };
  const Activation activations[] = {
      {"silu_mul", [&](float* v) { qvl::silu_mul_in_place(v, up.data(), n); }, up},
      {"quick_gelu", [&](float* v) { qvl::quick_gelu_in_place(v, n); }, {}},
      {"gelu", [&](float* v) { qvl::gelu_in_place(v, n); }, {}},
      {"gelu_tanh", [&](float* v) { qvl::gelu_tanh_in_place(v, n); }, {}},
  };
  for (const Activation& activation : activations) {
    std::vector<float> expected = x, actual = x;
    qvl::set_isa("scalar");
    activation.apply(expected.data());
    qvl::set_isa(isa);
    activation.apply(actual.data());
    double worst = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const double factor = activation.factor.empty() ? 1.0 : std::fabs(activation.factor[i]);
      const double limit = kActivationRelative * std::max(1.0, static_cast<double>(std::fabs(x[i]))) * std::max(1.0, factor);
      worst = std::max(worst, std::fabs(static_cast<double>(actual[i]) - expected[i]) / limit);
    }
    check(worst <= 1.0, isa + " " + activation.name + " (error/limit " + std::to_string(worst) + ")");
  }
}

void check_rope(const std::string& isa, std::mt19937& rng) {
  for (int64_t head_dim : {64, 80, 128, 6}) {
    const int64_t n_heads = 3, half = head_dim / 2;
    const std::vector<float> heads = random_floats(static_cast<size_t>(n_heads * head_dim), 2.0f, rng);
    std::vector<float> cos(half), sin(half);
    for (int64_t j = 0; j < half; ++j) {
      const float angle = 0.37f * static_cast<float>(j * 11 + 1);
      cos[j] = std::cos(angle), sin[j] = std::sin(angle);
    }
    const double rope = relative_to_scalar(isa, [&] {
      std::vector<float> out = heads;
      qvl::apply_rope(out.data(), n_heads, head_dim, cos.data(), sin.data());
      return out;
    });
    check(rope <= kRowOpRelative, isa + " rope head_dim=" + std::to_string(head_dim) + " (" + std::to_string(rope) + ")");
  }
}

// Qwen3's q/k norm: every head of a row normalised with the same head_dim weights, in one call. On
// each ISA against scalar, and equal to that ISA's rms_norm of each head on its own. head_dim 36 leaves a
// partial vector on every ISA.
void check_rms_norm_heads(const std::string& isa, std::mt19937& rng) {
  for (int64_t head_dim : {64, 128, 36}) {
    const int64_t n_heads = 4;
    const std::vector<float> heads = random_floats(static_cast<size_t>(n_heads * head_dim), 2.0f, rng);
    const std::vector<float> weight = random_floats(static_cast<size_t>(head_dim), 1.0f, rng);
    auto per_row = [&] {
      std::vector<float> out = heads;
      qvl::rms_norm_heads(out.data(), n_heads, head_dim, weight.data(), 1e-6f);
      return out;
    };
    const std::string label = isa + " rms_norm_heads head_dim=" + std::to_string(head_dim);
    const double error = relative_to_scalar(isa, per_row);
    check(error <= kRowOpRelative, label + " (" + std::to_string(error) + ")");
    std::vector<float> per_head = heads;
    for (int64_t h = 0; h < n_heads; ++h) {
      qvl::rms_norm(per_head.data() + h * head_dim, weight.data(), head_dim, 1e-6f, per_head.data() + h * head_dim);
    }
    check(per_row() == per_head, label + " equals rms_norm of each head");
  }
}

// M-RoPE as the decoder applies it (its cos/sin built per layout, then the ISA's rope op), with t, h and
// w all different so that a frequency pair given to the wrong coordinate would show: Qwen3-VL's
// interleaved layout and Qwen2-VL's sections, on each ISA against scalar.
void check_mrope(const std::string& isa, std::mt19937& rng) {
  struct Layout {
    const char* name;
    qvl::MRopeLayout layout;
    int64_t head_dim;
    std::array<int, 3> sections;
    double theta;
  };
  const Layout layouts[] = {{"interleaved", qvl::MRopeLayout::Interleaved, 64, {12, 10, 10}, 5e6},
                            {"interleaved", qvl::MRopeLayout::Interleaved, 128, {24, 20, 20}, 5e6},
                            {"sectioned", qvl::MRopeLayout::Sectioned, 128, {16, 24, 24}, 1e6}};
  const int32_t position[3] = {7, 300, 41};
  for (const Layout& l : layouts) {
    const qvl::MRope rope(l.head_dim, l.theta, l.sections, l.layout);
    const int64_t n_heads = 3;
    const std::vector<float> heads = random_floats(static_cast<size_t>(n_heads * l.head_dim), 2.0f, rng);
    const double error = relative_to_scalar(isa, [&] {
      std::vector<float> out = heads;
      rope.apply(out.data(), n_heads, position);
      return out;
    });
    check(error <= kRowOpRelative, isa + " M-RoPE " + l.name + " head_dim=" + std::to_string(l.head_dim) + " (" +
                                       std::to_string(error) + ")");
  }
}

// The decoder's attention over a cache holding `first` positions before the n new ones.
std::vector<float> causal_attention_output(int64_t group, int64_t head_dim, int64_t n, int64_t first,
                                           const std::vector<float>& q, const std::vector<float>& kv,
                                           qvl::ThreadPool& pool) {
  const int64_t n_kv_heads = 2, n_keys = first + n;
  const qvl::AttentionShape shape{group * n_kv_heads, n_kv_heads, head_dim};
  qvl::KvCache cache(1, n_kv_heads, head_dim, n_keys);
  for (int64_t h = 0; h < n_kv_heads; ++h) {
    std::copy_n(kv.data() + h * n_keys * head_dim, n_keys * head_dim, cache.keys(0, h));
    std::copy_n(kv.data() + (n_kv_heads + h) * n_keys * head_dim, n_keys * head_dim, cache.values(0, h));
  }
  cache.grow(n_keys);
  std::vector<float> out(q.size()), scratch(static_cast<size_t>(pool.size()) *
                                            qvl::causal_attention_scratch_floats(n_keys, head_dim));
  qvl::causal_attention(q.data(), n, first, cache, 0, shape, out.data(), scratch.data(), pool);
  return out;
}

void check_causal_attention(const std::string& isa, qvl::ThreadPool& pool, std::mt19937& rng) {
  const int64_t cases[][4] = {{1, 64, 1, 0}, {6, 128, 1, 100}, {6, 64, 37, 0}, {7, 64, 53, 20}, {2, 36, 9, 3}};
  for (const auto& c : cases) {
    const int64_t group = c[0], head_dim = c[1], n = c[2], first = c[3];
    const std::vector<float> q = random_floats(static_cast<size_t>(n * group * 2 * head_dim), 3.0f, rng);
    const std::vector<float> kv = random_floats(static_cast<size_t>(4 * (first + n) * head_dim), 1.0f, rng);
    const double error = relative_to_scalar(isa, [&] { return causal_attention_output(group, head_dim, n, first, q, kv, pool); });
    check(error <= kAttentionRelative, isa + " causal attention group=" + std::to_string(group) + " head_dim=" +
                                           std::to_string(head_dim) + " n=" + std::to_string(n) + " first=" +
                                           std::to_string(first) + " (" + std::to_string(error) + ")");
  }
}

// q, k, v (rows of 3 * width floats, n_heads heads of head_dim each) as an int16 tile (Fast on
// AVX-512) rounds them, with the kernel's steps: each head's query and key row to
// int16_score_levels(head_dim) levels of its largest |value|, each value channel to
// int16_output_levels() levels of its largest |value| over the segment.
std::vector<float> int16_rounded(std::vector<float> qkv, const std::vector<int64_t>& bounds, int64_t width,
                                 int64_t head_dim) {
  auto round_to = [](float x, float max_abs, float levels) {
    const float inverse = max_abs > 0.0f ? levels / max_abs : 0.0f;
    return std::nearbyint(x * inverse) * (max_abs / levels);
  };
  const float row_levels = static_cast<float>(qvl::int16_score_levels(head_dim));
  const float value_levels = static_cast<float>(qvl::int16_output_levels());
  for (size_t s = 0; s + 1 < bounds.size(); ++s) {
    for (int64_t first = 0; first < 2 * width; first += head_dim) {  // q, then k
      for (int64_t row = bounds[s]; row < bounds[s + 1]; ++row) {
        float* x = qkv.data() + row * 3 * width + first;
        float max_abs = 0.0f;
        for (int64_t c = 0; c < head_dim; ++c) max_abs = std::max(max_abs, std::fabs(x[c]));
        for (int64_t c = 0; c < head_dim; ++c) x[c] = round_to(x[c], max_abs, row_levels);
      }
    }
    for (int64_t channel = 2 * width; channel < 3 * width; ++channel) {
      float max_abs = 0.0f;
      for (int64_t row = bounds[s]; row < bounds[s + 1]; ++row) max_abs = std::max(max_abs, std::fabs(qkv[row * 3 * width + channel]));
      for (int64_t row = bounds[s]; row < bounds[s + 1]; ++row) {
        float& x = qkv[row * 3 * width + channel];
        x = round_to(x, max_abs, value_levels);
      }
    }
  }
  return qkv;
}

// The int16 tile's attention in double on int16_rounded input: per block of kAttentionKeyTile keys,
// the probabilities against the block's max rounded to int16_output_levels() levels, then weighted by
// exp(block max - overall max); out laid out as the input.
std::vector<float> int16_tile_reference(const std::vector<float>& rounded, const std::vector<int64_t>& bounds,
                                        int64_t n_heads, int64_t head_dim) {
  const int64_t width = n_heads * head_dim;
  const double levels = qvl::int16_output_levels();
  std::vector<float> out(rounded.size());
  auto at = [&](int64_t row, int64_t tensor, int64_t head) { return rounded.data() + row * 3 * width + tensor * width + head * head_dim; };
  for (size_t s = 0; s + 1 < bounds.size(); ++s) {
    const int64_t first = bounds[s], n = bounds[s + 1] - bounds[s];
    for (int64_t head = 0; head < n_heads; ++head) {
      for (int64_t i = first; i < first + n; ++i) {
        std::vector<double> scores(n), weights(n);
        for (int64_t j = 0; j < n; ++j) {
          double dot = 0.0;
          for (int64_t c = 0; c < head_dim; ++c) dot += static_cast<double>(at(i, 0, head)[c]) * at(first + j, 1, head)[c];
          scores[j] = dot / std::sqrt(static_cast<double>(head_dim));
        }
        const double overall_max = *std::max_element(scores.begin(), scores.end());
        for (int64_t block = 0; block < n; block += qvl::kAttentionKeyTile) {
          const int64_t end = std::min(n, block + qvl::kAttentionKeyTile);
          const double block_max = *std::max_element(scores.begin() + block, scores.begin() + end);
          for (int64_t j = block; j < end; ++j) {
            weights[j] = std::nearbyint(std::exp(scores[j] - block_max) * levels) * std::exp(block_max - overall_max);
          }
        }
        const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
        for (int64_t c = 0; c < head_dim; ++c) {
          double sum = 0.0;
          for (int64_t j = 0; j < n; ++j) sum += weights[j] * at(first + j, 2, head)[c];
          out[i * 3 * width + head * head_dim + c] = static_cast<float>(sum / total);
        }
      }
    }
  }
  return out;
}

// The ViT's attention on ragged segments: 140 rows (query blocks 48 + 48 + 44, key blocks 64 + 64 +
// 12), 60 (48 + 12) and 24; head_dim 64, 36 (4 mod 8: the 4-row tail steps) and 80. Exact attends in
// float on every ISA: against the scalar float routine. Fast does too where the ISA has no tile of its
// own; where it has (avx512: both products on int16 levels), against int16_tile_reference: the same
// roundings in double. What may differ then is float summation order and, rarely, a probability that
// the two exp functions put on either side of a level's rounding boundary: one level (1 / 5792 of its
// block's max) of one weight, ~1e-4 of the output scale with this data's spread of weights; the
// tolerance is 3e-4. (A wrong scale, pair or padding costs 1e-2 or more. What the rounding does to the
// encoder's output: the golden tests' fast tolerances and python -m benchmarks.vision_error.)
void check_vision_attention(const std::string& isa, qvl::ThreadPool& pool, std::mt19937& rng) {
  constexpr double kInt16TileRelative = 3e-4;
  const std::vector<int64_t> bounds{0, 140, 200, 224};
  for (int64_t head_dim : {64, 36, 80}) {
    const int64_t n_heads = 3, width = n_heads * head_dim, rows = bounds.back();
    const std::vector<float> qkv = random_floats(static_cast<size_t>(3 * rows * width), 2.0f, rng);
    auto attend = [&](qvl::Precision precision) {
      // q, k, v side by side in rows of 3 * width, as the encoder's; out's rows as far apart
      std::vector<float> out(qkv.size());
      qvl::SegmentedAttention attention(n_heads, head_dim, bounds, pool.size());
      attention.run(qkv.data(), qkv.data() + width, qkv.data() + 2 * width, 3 * width, out.data(), precision, pool);
      for (int64_t row = 0; row < rows; ++row) {  // only the first width floats of a row are outputs
        std::fill(out.begin() + row * 3 * width + width, out.begin() + (row + 1) * 3 * width, 0.0f);
      }
      return out;
    };
    const std::string label = isa + " vision attention head_dim=" + std::to_string(head_dim);
    qvl::set_isa(isa);
    const bool int16_tile = qvl::isa_ops(qvl::active_isa()).vision_tile_fast != nullptr;
    for (qvl::Precision precision : {qvl::Precision::Exact, qvl::Precision::Fast}) {
      if (precision == qvl::Precision::Fast && int16_tile) {
        const std::vector<float> expected =
            int16_tile_reference(int16_rounded(qkv, bounds, width, head_dim), bounds, n_heads, head_dim);
        qvl::set_isa(isa);
        const double error = relative_difference(attend(precision), expected);
        check(error <= kInt16TileRelative, label + " fast, int16 tile (" + std::to_string(error) + ")");
        continue;
      }
      const double error = relative_to_scalar(isa, [&] { return attend(precision); });
      check(error <= kAttentionRelative, label + " " + qvl::precision_name(precision) + " (" + std::to_string(error) + ")");
    }
  }
}

// Every ISA but scalar has its own vector variant of every op (none may fall back to scalar unseen).
void check_op_coverage(const std::vector<std::string>& isas) {
  const qvl::IsaOps& scalar = qvl::isa_ops(qvl::Isa::Scalar);
  for (const std::string& isa : isas) {
    if (isa == "scalar") continue;
    qvl::set_isa(isa);
    const qvl::IsaOps& ops = qvl::isa_ops(qvl::active_isa());
    const bool own = ops.rms_norm != scalar.rms_norm && ops.layer_norm != scalar.layer_norm &&
                     ops.silu_mul != scalar.silu_mul && ops.quick_gelu != scalar.quick_gelu &&
                     ops.gelu_erf != scalar.gelu_erf && ops.gelu_tanh != scalar.gelu_tanh &&
                     ops.softmax != scalar.softmax && ops.rope != scalar.rope &&
                     ops.causal_group != scalar.causal_group && ops.vision_tile != scalar.vision_tile;
    check(own, isa + " has a vector variant of every op");
  }
}

// The tables of ISAs this CPU lacks stay empty: building one runs its layers' add functions, compiled
// for that ISA (avx512's stored its function pointers with zmm moves and killed the process on AVX2
// CPUs). Scalar's entries would be there too if such a table were built, so an empty one was not.
void check_unavailable_tables_left_empty() {
  for (qvl::Isa isa : {qvl::Isa::Scalar, qvl::Isa::Avx2, qvl::Isa::Avx512, qvl::Isa::Amx, qvl::Isa::Neon}) {
    if (qvl::isa_available(isa)) continue;
    check(qvl::isa_ops(isa).rms_norm == nullptr && qvl::isa_kernels(isa).q8_0.dot_tile == nullptr,
          std::string(qvl::isa_name(isa)) + " (not on this CPU): its tables were never built");
  }
}

void check_ops(const std::vector<std::string>& isas, qvl::ThreadPool& pool, std::mt19937& rng) {
  check_op_coverage(isas);
  for (const std::string& isa : isas) {
    check_row_ops(isa, rng);
    check_activations(isa, rng);
    check_rope(isa, rng);
    check_rms_norm_heads(isa, rng);
    check_mrope(isa, rng);
    check_causal_attention(isa, pool, rng);
    check_vision_attention(isa, pool, rng);
  }
}

}  // namespace

int main() {
  std::string initial = qvl::isa_name(qvl::active_isa());
  std::vector<std::string> isas = isas_to_test();
  const char* forced = std::getenv("QVL_ISA");
  if (forced != nullptr && *forced != '\0') check(initial == forced, "QVL_ISA selects the starting ISA");
  std::printf("ISA at start: %s; testing:", initial.c_str());
  for (const std::string& isa : isas) std::printf(" %s", isa.c_str());
  std::printf("\n");
  std::mt19937 rng(1234);
  qvl::ThreadPool pool(3);  // more threads than small matrices have chunks: exercises the edges
  for (qvl::GgmlType type : kTypes) {
    const int64_t k = is_k_quant(type) ? 512 : 96;
    for (int64_t rows : {37, 257}) {
      for (int64_t n : {1, 7, 33}) check_case_on_isas(make_case(type, rows, k, n, rng), isas, pool);
    }
  }
  // The matrix-matrix path: chunks of 13, 16 + 16 + 13 and 16 x 4 + 6 rows (panels of 8 left partly
  // empty), activation rows a multiple of the register tile and not, k of several (super-)blocks; for
  // float weights the 16-bit GEMM, k = 288: a k-slice of 256 values and one more block.
  check_gemm_coverage(isas);
  const int64_t gemm_shapes[][2] = {{13, 16}, {45, 23}, {70, 40}};  // rows, n
  for (qvl::GgmlType type : kTypes) {
    const int64_t k = is_k_quant(type) ? 3 * 256 : is_float_type(type) ? 9 * 32 : 7 * 32;
    for (const auto& shape : gemm_shapes) check_case_on_isas(make_case(type, shape[0], k, shape[1], rng), isas, pool);
  }
  check_ops(isas, pool, rng);
  check_unavailable_tables_left_empty();
  std::printf("%d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
