// Softmax of a row in place, scalar reference: exp(x - max) / sum, the sum taken in order.
#include "kernels/strict_fp.h"

#include <algorithm>
#include <cmath>

#include "ops/op_table.h"

namespace qvl::scalar {
namespace {

void softmax(float* x, int64_t n) {
  float max = -INFINITY;
  for (int64_t i = 0; i < n; ++i) max = std::max(max, x[i]);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inverse = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inverse;
}

}  // namespace

void add_softmax(IsaOps& table) { table.softmax = softmax; }

}  // namespace qvl::scalar
