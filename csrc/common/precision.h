// How a matrix product treats its activations, and the names the Python API gives the choices.
#pragma once
#include <string>
#include <vector>

namespace qvl {

enum class Precision {
  Exact,  // float activations against the dequantized weights: reproduces the reference to ~1e-4
  // Activations quantized to 8-bit blocks and integer dot products, as llama.cpp does. Float weights
  // (F32/F16/BF16) in matrix-matrix products (n >= 16, k a multiple of 32) on ISAs with a 16-bit
  // multiply-accumulate (AVX-512 VNNI): weights and activations as 16-bit integer blocks
  // (int16_blocks.h), within ~1e-4 of float; elsewhere float math.
  Fast,
  // Fast, and in matrix-matrix products (n >= 16) float weights (F32/F16/BF16) too are multiplied as
  // 8-bit blocks: each row is encoded as Q8_0 on the fly (k a multiple of 32; other shapes stay
  // float). The quickest path for an F16 vision encoder, at the cost of Q8_0's weight rounding.
  Int8,
};

// "exact", "fast", "int8": every precision, in that order (python's ops.PRECISIONS reads it).
const std::vector<std::string>& precision_names();
const char* precision_name(Precision precision);
// Throws std::invalid_argument naming the accepted names.
Precision parse_precision(const std::string& name);

}  // namespace qvl
