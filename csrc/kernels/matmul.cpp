// The public kernel entry points (kernels.h): argument checks, the choice of path, and the split of
// the work into row chunks for the thread pool.
#include "kernels/kernels.h"

#include <algorithm>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/blocks.h"
#include "kernels/int16_blocks.h"
#include "kernels/kernel_table.h"

namespace qvl {
namespace {

constexpr int64_t kRowGranule = 4;           // the fast kernels' register tile height
constexpr int64_t kMaxChunkRows = 64;        // bounds the work of one task so threads stay balanced
constexpr int64_t kTasksPerThread = 4;       // enough tasks that an unlucky last one costs little
constexpr int64_t kActTile = 64;             // activation rows per pass over a weight chunk (stays in L2)
constexpr size_t kDequantTileBytes = 64 * 1024;  // float rows dequantized at once by the Exact path
constexpr int64_t kGemmMinActRows = 16;      // below this, converting weight rows to panels does not pay
constexpr int64_t kGemmRowGranule = 16;      // the matrix-matrix kernels' panel height (8 or 16 rows)
constexpr int64_t kFloatGemmRowGranule = 16;  // the float GEMM's panel height
constexpr int64_t kFloatGemmSlice = 256;      // values per k-slice: a multiple of every block size
constexpr int64_t kStreamPieces = 8;          // pieces per thread's region in a memory-bound pass
constexpr int64_t kStreamMinRows = 512;       // below this, small dynamic chunks balance better

int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// Rows per task: small enough that every thread gets several tasks even on a 256-row matrix.
int64_t chunk_rows(int64_t rows, int threads, int64_t most, int64_t granule) {
  int64_t wanted = rows / (static_cast<int64_t>(threads) * kTasksPerThread);
  return std::clamp(round_up(std::max<int64_t>(wanted, 1), granule), granule, most);
}

void check_weight(const WeightView& w) {
  if (w.rows < 0) throw std::invalid_argument("weight has a negative row count");
  if (w.rows > 0 && w.data == nullptr) throw std::invalid_argument("weight has no data");
  row_bytes(w.type, w.cols);  // throws for an unsupported type or a partial block
  if (!is_runnable_type(w.type)) throw std::invalid_argument(std::string("cannot run tensor type ") + type_name(w.type));
}

// Calls chunk_fn(first, count) over the weight rows, split into chunks handed to the pool.
void run_row_chunks(ThreadPool& pool, int64_t rows, int64_t most_rows,
                    const std::function<void(int64_t first, int64_t count)>& chunk_fn,
                    int64_t granule = kRowGranule) {
  int64_t chunk = chunk_rows(rows, pool.size(), most_rows, granule);
  int64_t n_chunks = (rows + chunk - 1) / chunk;
  pool.run(n_chunks, [&](int64_t task, int) {
    int64_t first = task * chunk;
    chunk_fn(first, std::min(chunk, rows - first));
  });
}

// A weight chunk against every activation row, a tile of activation rows at a time.
void dot_chunk(DotTileFn dot_tile, int64_t k, const uint8_t* w, size_t w_stride, int64_t count, const uint8_t* act,
               size_t act_stride, int64_t n, float* out, size_t out_stride) {
  for (int64_t j = 0; j < n; j += kActTile) {
    int64_t tile = std::min(kActTile, n - j);
    dot_tile(k, w, w_stride, count, act + j * act_stride, act_stride, tile, out + j * out_stride, out_stride);
  }
}

template <typename T>
T* scratch(std::vector<T>& buffer, size_t count) {
  if (buffer.size() < count) buffer.resize(count);
  return buffer.data();
}

void float_activation_matmul(const TypeKernels& kernels, const WeightView& w, const float* x, int64_t n, float* out,
                             ThreadPool& pool) {
  size_t w_stride = row_bytes(w.type, w.cols);
  const auto* act = reinterpret_cast<const uint8_t*>(x);
  size_t act_stride = static_cast<size_t>(w.cols) * sizeof(float);
  run_row_chunks(pool, w.rows, kMaxChunkRows, [&](int64_t first, int64_t count) {
    dot_chunk(kernels.dot_tile, w.cols, w.data + first * w_stride, w_stride, count, act, act_stride, n, out + first,
              w.rows);
  });
}

// Dequantize a few weight rows to float once, then run the float kernel against all activation rows.
void exact_matmul(const IsaKernels& table, const TypeKernels& kernels, const WeightView& w, const float* x, int64_t n,
                  float* out, ThreadPool& pool) {
  size_t w_stride = row_bytes(w.type, w.cols);
  size_t float_stride = static_cast<size_t>(w.cols) * sizeof(float);
  int64_t most_rows = std::max<int64_t>(kRowGranule, kDequantTileBytes / float_stride / kRowGranule * kRowGranule);
  run_row_chunks(pool, w.rows, std::min(most_rows, kMaxChunkRows), [&](int64_t first, int64_t count) {
    thread_local std::vector<float> tile;
    float* rows = scratch(tile, static_cast<size_t>(count * w.cols));
    for (int64_t r = 0; r < count; ++r) kernels.dequantize_row(w.data + (first + r) * w_stride, rows + r * w.cols, w.cols);
    dot_chunk(table.f32.dot_tile, w.cols, reinterpret_cast<const uint8_t*>(rows), float_stride, count,
              reinterpret_cast<const uint8_t*>(x), float_stride, n, out + first, w.rows);
  });
}

// The activations quantized once into `format` rows, in the calling thread's buffer (reused across calls).
const uint8_t* quantize_activations(const IsaKernels& table, ActFormat format, const float* x, int64_t n, int64_t k,
                                    ThreadPool& pool) {
  size_t act_stride = act_row_bytes(format, k);
  QuantizeRowFn quantize_act = act_quantizer(table, format);
  thread_local std::vector<uint8_t> act_buffer;
  uint8_t* act = scratch(act_buffer, act_stride * static_cast<size_t>(n));
  if (n == 1) {
    quantize_act(x, act, k);
  } else {
    pool.run(n, [&](int64_t j, int) { quantize_act(x + j * k, act + j * act_stride, k); });
  }
  return act;
}

// Many activation rows in float: each chunk of weight rows is dequantized one k-slice at a time and
// run against all activation rows by the float GEMM, which adds each slice's sums into out. Slices
// keep the packed weights in L1 and each float sum short.
void float_gemm_matmul(const IsaKernels& table, const TypeKernels& kernels, const WeightView& w, const float* x,
                       int64_t n, float* out, ThreadPool& pool) {
  size_t w_stride = row_bytes(w.type, w.cols);
  run_row_chunks(
      pool, w.rows, kMaxChunkRows,
      [&](int64_t first, int64_t count) {
        thread_local std::vector<float> tile;
        float* rows = scratch(tile, static_cast<size_t>(count * kFloatGemmSlice));
        for (int64_t k0 = 0; k0 < w.cols; k0 += kFloatGemmSlice) {
          int64_t slice = std::min(kFloatGemmSlice, w.cols - k0);
          size_t slice_offset = k0 == 0 ? 0 : row_bytes(w.type, k0);  // whole blocks: slices are block-aligned
          for (int64_t r = 0; r < count; ++r) {
            kernels.dequantize_row(w.data + (first + r) * w_stride + slice_offset, rows + r * slice, slice);
          }
          table.float_gemm(slice, rows, static_cast<size_t>(slice), count, x + k0, static_cast<size_t>(w.cols), n,
                           out + first, static_cast<size_t>(w.rows), k0 > 0);
        }
      },
      kFloatGemmRowGranule);
}

// Calls chunk_fn(first, count) over the weight rows for a memory-bound pass: the rows are cut into one
// contiguous region per thread, each region into kStreamPieces pieces, and the tasks alternate between
// regions (task i = piece i / threads of region i % threads). Threads running at the same pace so
// each stream through a region of their own, in order, which keeps the prefetchers' streams long and
// the threads off each other's pages; a thread that falls behind (another process took its core) still
// has its pieces taken by the others.
void run_row_streams(ThreadPool& pool, int64_t rows, const std::function<void(int64_t first, int64_t count)>& chunk_fn) {
  int64_t regions = pool.size();
  int64_t piece = round_up((rows + regions * kStreamPieces - 1) / (regions * kStreamPieces), kRowGranule);
  int64_t region_rows = piece * kStreamPieces;
  pool.run(regions * kStreamPieces, [&](int64_t task, int) {
    int64_t first = (task % regions) * region_rows + (task / regions) * piece;
    if (first < rows) chunk_fn(first, std::min(piece, rows - first));
  });
}

// Quantize the activations once, then integer dot products against the weight's own blocks.
void fast_matmul(const IsaKernels& table, const TypeKernels& kernels, const WeightView& w, const float* x, int64_t n,
                 float* out, ThreadPool& pool) {
  size_t w_stride = row_bytes(w.type, w.cols);
  size_t act_stride = act_row_bytes(kernels.act_format, w.cols);
  const uint8_t* act = quantize_activations(table, kernels.act_format, x, n, w.cols, pool);
  auto dot_rows = [&](int64_t first, int64_t count) {
    dot_chunk(kernels.dot_tile, w.cols, w.data + first * w_stride, w_stride, count, act, act_stride, n, out + first,
              w.rows);
  };
  if (w.rows >= kStreamMinRows) {
    run_row_streams(pool, w.rows, dot_rows);
  } else {
    run_row_chunks(pool, w.rows, kMaxChunkRows, dot_rows);
  }
}

bool gemm_applies(const TypeKernels& kernels, int64_t n) {
  return kernels.gemm_tile != nullptr && n >= kGemmMinActRows;
}

// Many activation rows: the activations quantized once into `act_format`, then each chunk of weight rows
// becomes integer panels in `gemm_tile` and meets all n rows.
void panel_gemm(const IsaKernels& table, DotTileFn gemm_tile, ActFormat act_format, const WeightView& w,
                const float* x, int64_t n, float* out, ThreadPool& pool) {
  size_t w_stride = row_bytes(w.type, w.cols);
  size_t act_stride = act_row_bytes(act_format, w.cols);
  const uint8_t* act = quantize_activations(table, act_format, x, n, w.cols, pool);
  run_row_chunks(
      pool, w.rows, kMaxChunkRows,
      [&](int64_t first, int64_t count) {
        gemm_tile(w.cols, w.data + first * w_stride, w_stride, count, act, act_stride, n, out + first, w.rows);
      },
      kGemmRowGranule);
}

void fast_gemm(const IsaKernels& table, const TypeKernels& kernels, const WeightView& w, const float* x, int64_t n,
               float* out, ThreadPool& pool) {
  panel_gemm(table, kernels.gemm_tile, kernels.gemm_act_format, w, x, n, out, pool);
}

// Int8 precision on float weights (n >= kGemmMinActRows) where the ISA has no panels that encode them
// (scalar, NEON): each chunk of weight rows is encoded as Q8_0 (exactly what the Q8_0 weight encoder
// stores) in the thread's scratch, then multiplied by Q8_0's Fast row dots, so the result equals a
// Fast matmul of the Q8_0-quantized weight up to float summation order.
void q8_0_encoded_matmul(const IsaKernels& table, const TypeKernels& kernels, const WeightView& w, const float* x,
                         int64_t n, float* out, ThreadPool& pool) {
  const TypeKernels& q8_0 = table.q8_0;
  const size_t act_stride = act_row_bytes(q8_0.act_format, w.cols);
  const uint8_t* act = quantize_activations(table, q8_0.act_format, x, n, w.cols, pool);
  const size_t w_stride = row_bytes(w.type, w.cols), q8_stride = row_bytes(GgmlType::Q8_0, w.cols);
  auto encode_and_multiply = [&](int64_t first, int64_t count) {
    thread_local std::vector<float> row;
    thread_local std::vector<uint8_t> encoded;
    float* values = scratch(row, static_cast<size_t>(w.cols));
    uint8_t* q = scratch(encoded, q8_stride * static_cast<size_t>(count));
    for (int64_t r = 0; r < count; ++r) {
      kernels.dequantize_row(w.data + (first + r) * w_stride, values, w.cols);
      q8_0.quantize_row(values, q + r * q8_stride, w.cols);
    }
    dot_chunk(q8_0.dot_tile, w.cols, q, q8_stride, count, act, act_stride, n, out + first, w.rows);
  };
  run_row_chunks(pool, w.rows, kMaxChunkRows, encode_and_multiply);
}

}  // namespace

void dequantize_rows(const WeightView& w, int64_t first_row, int64_t n_rows, float* out) {
  check_weight(w);
  if (first_row < 0 || n_rows < 0 || first_row + n_rows > w.rows) {
    throw std::invalid_argument("rows [" + std::to_string(first_row) + ", " + std::to_string(first_row + n_rows) +
                                ") are outside a weight of " + std::to_string(w.rows) + " rows");
  }
  const TypeKernels& kernels = type_kernels(isa_kernels(active_isa()), w.type);
  size_t stride = row_bytes(w.type, w.cols);
  for (int64_t r = 0; r < n_rows; ++r) kernels.dequantize_row(w.data + (first_row + r) * stride, out + r * w.cols, w.cols);
}

void quantize_rows(GgmlType type, const float* in, int64_t n_rows, int64_t k, uint8_t* out) {
  size_t stride = row_bytes(type, k);
  if (!is_runnable_type(type)) throw std::invalid_argument(std::string("cannot quantize to ") + type_name(type));
  if (n_rows < 0) throw std::invalid_argument("negative row count");
  const TypeKernels& kernels = type_kernels(isa_kernels(active_isa()), type);
  for (int64_t r = 0; r < n_rows; ++r) kernels.quantize_row(in + r * k, out + r * stride, k);
}

void matmul(const WeightView& w, const float* x, int64_t n, float* out, Precision precision, ThreadPool& pool) {
  check_weight(w);
  if (n < 0) throw std::invalid_argument("negative activation row count");
  if (n == 0 || w.rows == 0) return;
  if (x == nullptr || out == nullptr) throw std::invalid_argument("matmul needs activation and output buffers");
  const IsaKernels& table = isa_kernels(active_isa());
  const TypeKernels& kernels = type_kernels(table, w.type);
  // Int8 encodes float weights only for matrix-matrix products: at small n the encoding would cost more
  // than the product it speeds up.
  if (precision == Precision::Int8 && kernels.act_format == ActFormat::Float && w.cols % kBlock32 == 0 &&
      n >= kGemmMinActRows) {
    if (kernels.gemm_tile != nullptr) {
      fast_gemm(table, kernels, w, x, n, out, pool);  // panels encoded straight from the float rows
    } else {
      q8_0_encoded_matmul(table, kernels, w, x, n, out, pool);
    }
    return;
  }
  // Fast on float weights: 16-bit integer blocks where the ISA multiplies them faster than floats.
  if (precision == Precision::Fast && kernels.int16_gemm_tile != nullptr && w.cols % kInt16Block == 0 &&
      n >= kGemmMinActRows) {
    panel_gemm(table, kernels.int16_gemm_tile, ActFormat::I16_32, w, x, n, out, pool);
    return;
  }
  bool float_math = precision == Precision::Exact || kernels.act_format == ActFormat::Float;
  if (float_math && table.float_gemm != nullptr && n >= kGemmMinActRows) {
    float_gemm_matmul(table, kernels, w, x, n, out, pool);
  } else if (!float_math && gemm_applies(kernels, n)) {
    fast_gemm(table, kernels, w, x, n, out, pool);
  } else if (kernels.act_format == ActFormat::Float) {
    float_activation_matmul(kernels, w, x, n, out, pool);  // float weights: both precisions are exact
  } else if (precision == Precision::Exact) {
    exact_matmul(table, kernels, w, x, n, out, pool);
  } else {
    fast_matmul(table, kernels, w, x, n, out, pool);
  }
}

}  // namespace qvl
