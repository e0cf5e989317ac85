#include "kernels/strict_fp.h"

#include "kernels/k_quant_fit.h"

#include <cmath>

#include "kernels/half.h"

namespace qvl {
namespace {

constexpr int kSweepSteps = 20;        // candidate scales tried around the range-based first guess
constexpr float kSweepWidth = 1.0f;    // the sweep spans the first guess's level count +- this many levels

struct LevelSums {
  double w = 0, q = 0, qq = 0, x = 0, qx = 0;
};

// Nearest integer to v within [lo, hi], clamping before the conversion so no value overflows an int.
int round_clamped(double v, int lo, int hi) {
  if (!(v > lo)) return lo;  // also catches NaN
  if (v >= hi) return hi;
  return static_cast<int>(std::nearbyint(v));
}

}  // namespace

void fit_weights(const float* x, int n, float* weight) {
  double sum_squares = 0;
  for (int i = 0; i < n; ++i) sum_squares += static_cast<double>(x[i]) * x[i];
  float rms = static_cast<float>(std::sqrt(sum_squares / n));
  for (int i = 0; i < n; ++i) weight[i] = rms + std::fabs(x[i]);
}

int nearest_level(float x, float scale, float min, int top) {
  if (scale == 0.0f) return 0;
  return round_clamped((x + min) / scale, 0, top);
}

float fit_scale_min(const float* x, const float* weight, int n, int top, float* min) {
  float lo = 0.0f, hi = x[0];
  for (int i = 0; i < n; ++i) {
    lo = std::fmin(lo, x[i]);  // the offset can only shift down: the minimum is at most 0
    hi = std::fmax(hi, x[i]);
  }
  if (hi <= lo) {  // every value is the same non-positive number
    *min = -lo;
    return 0.0f;
  }
  float best_scale = (hi - lo) / top, best_min = -lo;
  double best_error = INFINITY;
  for (int step = 0; step <= kSweepSteps; ++step) {
    float levels_span = top + kSweepWidth * (2.0f * step / kSweepSteps - 1.0f);
    if (levels_span <= 0) continue;
    float inverse = levels_span / (hi - lo);
    LevelSums s;
    for (int i = 0; i < n; ++i) {
      int q = round_clamped((x[i] - lo) * inverse, 0, top);
      s.w += weight[i];
      s.q += weight[i] * q;
      s.qq += weight[i] * q * q;
      s.x += weight[i] * x[i];
      s.qx += weight[i] * q * x[i];
    }
    // Weighted least squares for x = scale * q + offset; an offset above zero is not representable.
    double det = s.w * s.qq - s.q * s.q;
    if (det <= 0) continue;
    double scale = (s.w * s.qx - s.q * s.x) / det;
    double offset = (s.qq * s.x - s.q * s.qx) / det;
    if (offset > 0) {
      offset = 0;
      scale = s.qx / s.qq;
    }
    if (scale <= 0) continue;
    double error = 0;
    for (int i = 0; i < n; ++i) {
      int q = nearest_level(x[i], static_cast<float>(scale), static_cast<float>(-offset), top);
      double diff = scale * q + offset - x[i];
      error += weight[i] * diff * diff;
    }
    if (error < best_error) {
      best_error = error;
      best_scale = static_cast<float>(scale);
      best_min = static_cast<float>(-offset);
    }
  }
  *min = best_min;
  return best_scale;
}

float fit_symmetric_scale(const float* x, const float* weight, int n, int half_range) {
  float extreme = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > std::fabs(extreme)) extreme = x[i];
  }
  if (extreme == 0.0f) return 0.0f;
  float best_scale = extreme / -half_range;
  double best_error = INFINITY;
  for (int step = 0; step <= kSweepSteps; ++step) {
    float levels = half_range + kSweepWidth * (2.0f * step / kSweepSteps - 1.0f);
    float inverse = -levels / extreme;  // maps the extreme value to about -levels
    double qx = 0, qq = 0;
    for (int i = 0; i < n; ++i) {
      int q = round_clamped(x[i] * inverse, -half_range, half_range - 1);
      qx += weight[i] * q * x[i];
      qq += weight[i] * q * q;
    }
    if (qq <= 0) continue;
    double scale = qx / qq;
    double error = 0;
    for (int i = 0; i < n; ++i) {
      int q = round_clamped(x[i] / scale, -half_range, half_range - 1);
      double diff = scale * q - x[i];
      error += weight[i] * diff * diff;
    }
    if (error < best_error) {
      best_error = error;
      best_scale = static_cast<float>(scale);
    }
  }
  return best_scale;
}

void pack_scales_mins_k(const uint8_t* scales, const uint8_t* mins, uint8_t* packed) {
  for (int j = 0; j < 4; ++j) {
    packed[j] = static_cast<uint8_t>((scales[j] & 63) | ((scales[j + 4] >> 4) << 6));
    packed[j + 4] = static_cast<uint8_t>((mins[j] & 63) | ((mins[j + 4] >> 4) << 6));
    packed[j + 8] = static_cast<uint8_t>((scales[j + 4] & 0x0F) | ((mins[j + 4] & 0x0F) << 4));
  }
}

uint16_t quantize_sub_scales(const float* values, int n, uint8_t* levels) {
  float largest = 0.0f;
  for (int i = 0; i < n; ++i) largest = std::fmax(largest, values[i]);
  uint16_t step_bits = float_to_half(std::fmin(largest / 63.0f, 65504.0f));
  float step = half_to_float(step_bits);
  for (int i = 0; i < n; ++i) {
    levels[i] = static_cast<uint8_t>(step > 0.0f ? round_clamped(values[i] / step, 0, 63) : 0);
  }
  return step_bits;
}

SuperBlockScales fit_super_block_scales(const float* x, int top, uint8_t* packed) {
  constexpr int kSubBlock = 32, kSubBlocks = 8;
  float scales[kSubBlocks], mins[kSubBlocks], weight[kSubBlock];
  for (int s = 0; s < kSubBlocks; ++s) {
    fit_weights(x + s * kSubBlock, kSubBlock, weight);
    scales[s] = fit_scale_min(x + s * kSubBlock, weight, kSubBlock, top, &mins[s]);
  }
  SuperBlockScales result;
  result.d = quantize_sub_scales(scales, kSubBlocks, result.scale);
  result.dmin = quantize_sub_scales(mins, kSubBlocks, result.min);
  pack_scales_mins_k(result.scale, result.min, packed);
  return result;
}

}  // namespace qvl
