// Tile-unit plumbing shared by the AMX matrix-matrix kernels (gemm_amx.cpp, q4_k_amx.cpp): the tile
// configuration both use and the padded copy of the last activation rows. Include only from *_amx.cpp.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/blocks.h"
#include "kernels/vnni_panel.h"

namespace qvl::amx {

constexpr int kTileRows = 16;  // activation rows per tile (and weight rows per panel)

// The layout of ldtilecfg's 64-byte operand (palette 1).
struct TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64, "ldtilecfg reads 64 bytes");

// Tiles 0, 1 and 6, 7: int32 sums of two pairs of blocks (one pair is stored while the tile unit
// works on the next); 2, 3: a pair's activation levels (B bytes per row); 4, 5: its panel levels.
template <int B>
inline void configure_tiles() {
  TileConfig config;
  for (int t : {0, 1, 6, 7}) config.rows[t] = kTileRows, config.bytes_per_row[t] = kTileRows * sizeof(int32_t);
  for (int t : {2, 3}) config.rows[t] = kTileRows, config.bytes_per_row[t] = B;
  for (int t : {4, 5}) config.rows[t] = B / 4, config.bytes_per_row[t] = 4 * kVnniPanelRows;
  // GCC 12 models ldtilecfg as reading only the first bytes of its operand and drops the other
  // stores (the tile unit then faults on a config of empty tiles): make them all happen first.
  __asm__ volatile("" : : "r"(&config) : "memory");
  _tile_loadconfig(&config);
}

// The activation rows from full_rows on (fewer than 16), copied into the calling thread's zeroed
// 16-row buffer so that tile loads stay inside memory we own; null when there are none.
inline const uint8_t* padded_last_rows(const uint8_t* act, size_t act_stride, int64_t full_rows, int64_t left) {
  if (left == 0) return nullptr;
  thread_local std::vector<uint8_t> buffer;
  const size_t bytes = kTileRows * act_stride;
  if (buffer.size() < bytes) buffer.resize(bytes);
  std::memset(buffer.data(), 0, bytes);
  std::memcpy(buffer.data(), act + full_rows * act_stride, static_cast<size_t>(left) * act_stride);
  return buffer.data();
}

}  // namespace qvl::amx
