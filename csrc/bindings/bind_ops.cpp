// Python bindings of the kernels: numpy in, numpy out, weights used in place (no copies), the GIL
// released around every computation. The friendly API with argument checks is python/qvl_local/ops.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "bindings/bindings.h"
#include "common/ggml_types.h"
#include "common/isa.h"
#include "common/thread_pool.h"
#include "kernels/kernels.h"

namespace py = pybind11;

// The module's pools: one per thread count asked for, created on first use and kept, so no call
// starts threads after the first.
qvl::ThreadPool& pool_for(int n_threads) {
  static std::mutex mutex;
  static std::map<int, std::unique_ptr<qvl::ThreadPool>> pools;
  if (n_threads <= 0) n_threads = qvl::ThreadPool::default_threads();
  std::lock_guard<std::mutex> lock(mutex);
  auto& pool = pools[n_threads];
  if (!pool) pool = std::make_unique<qvl::ThreadPool>(n_threads);
  return *pool;
}

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using ByteArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

qvl::WeightView weight_view(const ByteArray& data, const std::string& type_name, int64_t rows, int64_t cols) {
  qvl::WeightView w;
  w.type = qvl::parse_type(type_name);
  w.rows = rows;
  w.cols = cols;
  if (rows < 0) throw std::invalid_argument("rows must not be negative");
  size_t expected = static_cast<size_t>(rows) * qvl::row_bytes(w.type, cols);
  if (static_cast<size_t>(data.size()) != expected) {
    throw std::invalid_argument(type_name + " data of " + std::to_string(rows) + " x " + std::to_string(cols) +
                                " needs " + std::to_string(expected) + " bytes, got " + std::to_string(data.size()));
  }
  w.data = data.data();
  return w;
}

FloatArray as_matrix(const FloatArray& x, int64_t cols, const char* what) {
  if (x.ndim() != 2 || x.shape(1) != cols) {
    throw std::invalid_argument(std::string(what) + " must have shape (n, " + std::to_string(cols) + ")");
  }
  return x;
}

ByteArray quantize(const FloatArray& x, const std::string& type_name) {
  if (x.ndim() != 2) throw std::invalid_argument("quantize expects a 2-D array");
  qvl::GgmlType type = qvl::parse_type(type_name);
  int64_t rows = x.shape(0), cols = x.shape(1);
  size_t stride = qvl::row_bytes(type, cols);
  ByteArray out({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(stride)});
  const float* in = x.data();
  uint8_t* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    qvl::quantize_rows(type, in, rows, cols, dst);
  }
  return out;
}

FloatArray dequantize(const ByteArray& data, const std::string& type_name, int64_t rows, int64_t cols) {
  qvl::WeightView w = weight_view(data, type_name, rows, cols);
  FloatArray out({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)});
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    qvl::dequantize_rows(w, 0, rows, dst);
  }
  return out;
}

FloatArray matmul(const ByteArray& data, const std::string& type_name, int64_t rows, int64_t cols,
                  const FloatArray& x_in, const std::string& precision_name, int n_threads) {
  qvl::WeightView w = weight_view(data, type_name, rows, cols);
  FloatArray x = as_matrix(x_in, cols, "x");
  qvl::Precision precision = parse_precision(precision_name);
  int64_t n = x.shape(0);
  FloatArray out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(rows)});
  const float* xs = x.data();
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    qvl::matmul(w, xs, n, dst, precision, pool_for(n_threads));
  }
  return out;
}

// Reads every byte of `data` on the pool's threads and folds them into a checksum: the benchmark's
// yardstick for the memory read bandwidth a matrix-vector product can hope for. Each thread reads one
// contiguous region front to back, a 64-byte line at a time into 8 independent sums (so loads, not
// additions, set the pace), prefetching kAheadBytes ahead. On the 2-core Zen 5 VM (2 threads, 1 GiB)
// this reads as fast as the same loop under OpenMP on the same buffer (46-47 GB/s, back to back); the
// earlier yardstick (1 MiB pool tasks, each read as 4 interleaved streams) got 30 in the same minutes.
uint64_t stream_read(const ByteArray& data, int n_threads) {
  constexpr size_t kLine = 64, kAheadBytes = 1024;
  const uint8_t* bytes = data.data();
  const size_t size = static_cast<size_t>(data.size());
  qvl::ThreadPool& pool = pool_for(n_threads);
  const int64_t n_regions = pool.size();
  const size_t region_bytes = size / static_cast<size_t>(n_regions) / kLine * kLine;
  std::vector<uint64_t> folded(static_cast<size_t>(n_regions), 0);
  {
    py::gil_scoped_release release;
    pool.run(n_regions, [&](int64_t region, int) {
      const size_t begin = static_cast<size_t>(region) * region_bytes;
      const size_t end = region + 1 == n_regions ? size : begin + region_bytes;
      uint64_t lanes[kLine / 8] = {};
      size_t at = begin;
      for (; at + kLine <= end; at += kLine) {
        __builtin_prefetch(bytes + at + kAheadBytes, 0, 2);
        for (size_t lane = 0; lane < kLine / 8; ++lane) {
          uint64_t word;
          std::memcpy(&word, bytes + at + 8 * lane, sizeof(word));
          lanes[lane] += word;
        }
      }
      for (; at < end; ++at) lanes[0] += bytes[at];
      uint64_t fold = 0;
      for (uint64_t lane : lanes) fold ^= lane;
      folded[static_cast<size_t>(region)] = fold;
    });
  }
  uint64_t checksum = 0;
  for (uint64_t value : folded) checksum ^= value;
  return checksum;
}

// Every weight type the kernels run, in order: name -> (values per block, bytes per block).
py::dict type_blocks() {
  py::dict blocks;
  for (qvl::GgmlType type : qvl::runnable_types()) {
    const qvl::TypeGeometry* geometry = qvl::type_geometry(type);
    blocks[geometry->name] = py::make_tuple(geometry->block_elems, geometry->block_bytes);
  }
  return blocks;
}

std::vector<std::string> available_isas() {
  std::vector<std::string> names;
  for (int i = 0; i < qvl::kIsaCount; ++i) {
    const auto isa = static_cast<qvl::Isa>(i);
    if (qvl::isa_available(isa)) names.emplace_back(qvl::isa_name(isa));
  }
  return names;
}

}  // namespace

void register_ops(py::module_& m) {
  register_model_ops(m);
  m.def("quantize", &quantize, py::arg("x"), py::arg("type"),
        "Encode a float32 (rows, k) array as `type`; returns uint8 (rows, row_bytes) in GGUF layout.");
  m.def("dequantize", &dequantize, py::arg("data"), py::arg("type"), py::arg("rows"), py::arg("cols"),
        "Decode `rows` x `cols` values of `type` stored in the uint8 buffer `data` to float32.");
  m.def("matmul", &matmul, py::arg("data"), py::arg("type"), py::arg("rows"), py::arg("cols"), py::arg("x"),
        py::arg("precision"), py::arg("n_threads"),
        "x @ W.T for W given as (data, type, rows, cols) and float32 x of shape (n, cols); "
        "precision 'exact' or 'fast'; n_threads <= 0 uses the default pool.");
  m.def("type_blocks", &type_blocks,
        "The weight types the kernels run, in order: name -> (values per block, bytes per block), as in GGUF.");
  m.def("precisions", &qvl::precision_names, "The matmul precisions, in order: 'exact', 'fast', 'int8'.");
  m.def("set_decode_row_order", &qvl::set_decode_row_order, py::arg("order"),
        "How the AVX-512 decode kernels walk the rows: 'auto' (the CPU's choice), 'streams' or 'adjacent'.");
  m.def("set_isa", &qvl::set_isa, py::arg("name"), "Force the kernel ISA path: 'scalar', 'avx2', 'avx512', 'amx' or 'neon'.");
  m.def("active_isa", [] { return std::string(qvl::isa_name(qvl::active_isa())); }, "The ISA path in use.");
  m.def("available_isas", &available_isas, "ISA paths this build and CPU can run.");
  m.def("stream_read", &stream_read, py::arg("data"), py::arg("n_threads"),
        "Read every byte of a uint8 array on n_threads threads (<= 0: default); returns a checksum. "
        "For benchmarks: the machine's read bandwidth next to the kernels'.");
  m.def("default_threads", &qvl::ThreadPool::default_threads, "Threads the default pool uses.");
}
