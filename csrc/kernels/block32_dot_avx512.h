// The AVX-512 row-dot kernel (decode) for the 32-value types x = d * level with an fp16 d per block
// (Q4_0, Q8_0), against ActQ8_32 activation blocks: include only from *_avx512.cpp.
//
// Four consecutive blocks of a row meet the activations in two 512-bit vectors, one block per 128-bit
// lane: `low` holds values 0..15 of each block, `high` values 16..31. VNNI dpbusd wants one unsigned
// operand, so the weight levels are loaded as level + Levels::kLevelBias (unsigned) and the
// accumulator starts at -kLevelBias * sum(activations) per block, formed once per activation group for
// all rows: every block's integer sum is exactly the scalar reference's. The four int32 partial sums a
// block leaves are reduced for four rows at once (unpacks and adds, no horizontal sums): one vector then
// holds rows 0..3 x blocks 0..3, and the float work (conversion, the 16 fp16 scales converted together,
// one FMA) is done once per 16 row-blocks.
//
// Levels provides:
//   using Block; static constexpr int kLevelBias (added to every level to make it unsigned);
//   static constexpr size_t kPrefetchOffsets[]: offsets into a group's bytes that touch every line of it;
//   struct Indices and static Indices indices(): the permute tables, built once per tile;
//   static QuadGroup load_quad(const uint8_t* const (&group)[4], const Indices&): one group of 4 rows.
#pragma once
#include <immintrin.h>

#include <cstring>

#include "kernels/blocks.h"

namespace qvl::avx512::block32 {

constexpr int kQuadRows = 4;
constexpr int kGroupBlocks = 4;  // blocks per vector: one per 128-bit lane

// A quad of rows' group of 4 blocks: `low[r]` / `high[r]` row r's biased levels in the layout above;
// `scale` lane 4j + r = the d of block j of row r.
struct QuadGroup {
  __m512i low[kQuadRows], high[kQuadRows];
  __m512 scale;
};

// One activation row's group of 4 blocks, laid out as the weights: lane j of `low` = values 0..15 of
// block j, of `high` = values 16..31; `start` = -bias * the block's sum of levels (its 4 lanes
// together); `scale` lanes 4j..4j+3 = block j's d.
struct ActGroup {
  __m512i low, high, start;
  __m512 scale;
};

template <int Bias>
inline ActGroup load_act_group(const ActQ8_32* a) {
  auto levels = [&](int j) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[j].qs)); };
  __m512i blocks01 = _mm512_inserti64x4(_mm512_castsi256_si512(levels(0)), levels(1), 1);
  __m512i blocks23 = _mm512_inserti64x4(_mm512_castsi256_si512(levels(2)), levels(3), 1);
  ActGroup g;
  g.low = _mm512_shuffle_i64x2(blocks01, blocks23, _MM_SHUFFLE(2, 0, 2, 0));
  g.high = _mm512_shuffle_i64x2(blocks01, blocks23, _MM_SHUFFLE(3, 1, 3, 1));
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(Bias));  // the unsigned operand of dpbusd
  __m512i bias_sums = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, g.low), bias, g.high);
  g.start = _mm512_sub_epi32(_mm512_setzero_si512(), bias_sums);
  __m128 d = _mm_setr_ps(a[0].d, a[1].d, a[2].d, a[3].d);
  g.scale = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                                  _mm512_castps128_ps512(d));
  return g;
}

// Rows 0..3's 16-lane sums (lanes 4j..4j+3: block j) -> lane 4j + r = row r's sum of block j.
inline __m512i reduce_four_rows(__m512i s0, __m512i s1, __m512i s2, __m512i s3) {
  __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi32(s0, s1), _mm512_unpackhi_epi32(s0, s1));
  __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi32(s2, s3), _mm512_unpackhi_epi32(s2, s3));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));
}

// Weight rows in quads of 4 and C activation rows; acc[q][c] lane 4j + r collects row 4q + r.
template <typename Levels, int Quads, int C>
struct Tile {
  using Block = typename Levels::Block;
  using Indices = typename Levels::Indices;
  static constexpr size_t kGroupBytes = kGroupBlocks * sizeof(Block);
  static constexpr int kRows = kQuadRows * Quads;
  const uint8_t* rows[kRows];
  const ActQ8_32* acts[C];
  __m512 acc[Quads][C];

  // Blocks 4g..4g+3 of every row against the same blocks of every activation row (offsets in groups).
  inline void step(int64_t g, const Indices& index) {
    ActGroup a[C];
    for (int c = 0; c < C; ++c) a[c] = load_act_group<Levels::kLevelBias>(acts[c] + g * kGroupBlocks);
    for (int q = 0; q < Quads; ++q) {
      const uint8_t* group[kQuadRows];
      for (int r = 0; r < kQuadRows; ++r) group[r] = rows[kQuadRows * q + r] + g * kGroupBytes;
      QuadGroup w = Levels::load_quad(group, index);
      for (int c = 0; c < C; ++c) {
        __m512i sums[kQuadRows];
        for (int r = 0; r < kQuadRows; ++r) {
          sums[r] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a[c].start, w.low[r], a[c].low), w.high[r], a[c].high);
        }
        __m512i block_sums = reduce_four_rows(sums[0], sums[1], sums[2], sums[3]);
        acc[q][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(block_sums), _mm512_mul_ps(w.scale, a[c].scale), acc[q][c]);
      }
    }
  }

  // The 1..3 blocks past the last whole group, through zero-padded copies (zero levels and scales add
  // nothing): no load reaches past a row's end.
  inline void step_tail(int64_t g, int blocks, const Indices& index) {
    alignas(64) uint8_t w_copy[kRows][kGroupBytes] = {};
    alignas(64) ActQ8_32 a_copy[C][kGroupBlocks] = {};
    Tile padded = *this;
    for (int r = 0; r < kRows; ++r) {
      std::memcpy(w_copy[r], rows[r] + g * kGroupBytes, blocks * sizeof(Block));
      padded.rows[r] = w_copy[r];
    }
    for (int c = 0; c < C; ++c) {
      std::memcpy(a_copy[c], acts[c] + g * kGroupBlocks, blocks * sizeof(ActQ8_32));
      padded.acts[c] = a_copy[c];
    }
    padded.step(0, index);
    std::memcpy(acc, padded.acc, sizeof(acc));
  }

  // out[c * out_stride + (4q + r) * row_step] for the first n_valid rows: lanes r, r + 4, r + 8, r + 12.
  inline void store(float* out, size_t out_stride, int64_t row_step, int n_valid) const {
    for (int q = 0; q < Quads; ++q) {
      for (int c = 0; c < C; ++c) {
        alignas(64) float lanes[16];
        _mm512_store_ps(lanes, acc[q][c]);
        for (int r = 0; r < kQuadRows && kQuadRows * q + r < n_valid; ++r) {
          out[c * out_stride + (kQuadRows * q + r) * row_step] = (lanes[r] + lanes[r + 8]) + (lanes[r + 4] + lanes[r + 12]);
        }
      }
    }
  }
};

// One tile of Quads * 4 weight rows, row_step rows apart (the first n_valid real; the rest repeat the
// last real row), and C activation rows. Block group g of each row prefetches the same bytes `ahead`
// further on, at Levels::kPrefetchOffsets into the group.
template <typename Levels, int Quads, int C>
void run_tile(int64_t k, const uint8_t* w, size_t w_stride, int64_t row_step, int n_valid, size_t ahead,
              const uint8_t* act, size_t act_stride, float* out, size_t out_stride) {
  using TileT = Tile<Levels, Quads, C>;
  TileT tile;
  for (int r = 0; r < TileT::kRows; ++r) tile.rows[r] = w + (r < n_valid ? r : n_valid - 1) * row_step * w_stride;
  for (int c = 0; c < C; ++c) tile.acts[c] = reinterpret_cast<const ActQ8_32*>(act + c * act_stride);
  for (int q = 0; q < Quads; ++q) {
    for (int c = 0; c < C; ++c) tile.acc[q][c] = _mm512_setzero_ps();
  }
  const typename Levels::Indices index = Levels::indices();
  int64_t n_blocks = k / kBlock32, groups = n_blocks / kGroupBlocks;
  for (int64_t g = 0; g < groups; ++g) {
    for (int r = 0; r < TileT::kRows; ++r) {
      const char* next = reinterpret_cast<const char*>(tile.rows[r] + ahead + g * TileT::kGroupBytes);
      for (size_t offset : Levels::kPrefetchOffsets) _mm_prefetch(next + offset, _MM_HINT_T1);
    }
    tile.step(g, index);
  }
  if (int rest = static_cast<int>(n_blocks % kGroupBlocks); rest > 0) tile.step_tail(groups, rest, index);
  tile.store(out, out_stride, row_step, n_valid);
}

template <typename Levels, int Quads>
void run_rows(int64_t k, const uint8_t* w, size_t w_stride, int64_t row_step, int n_valid, size_t ahead,
              const uint8_t* act, size_t act_stride, int64_t n_act, float* out, size_t out_stride) {
  int64_t j = 0;
  for (; j + 2 <= n_act; j += 2) {
    run_tile<Levels, Quads, 2>(k, w, w_stride, row_step, n_valid, ahead, act + j * act_stride, act_stride,
                               out + j * out_stride, out_stride);
  }
  if (j < n_act) {
    run_tile<Levels, Quads, 1>(k, w, w_stride, row_step, n_valid, ahead, act + j * act_stride, act_stride,
                               out + j * out_stride, out_stride);
  }
}

// The rows are cut into kTileRows streams of consecutive rows and a tile takes row t of every stream,
// so each stream is read in address order: the L2 streamer follows 8 sequential streams, where 8
// adjacent short rows read side by side (several per 4 KiB page) leave it nothing to lock on to and
// every line must come through a software prefetch, each holding an L1 fill buffer for a whole memory
// trip. The prefetches fetch each stream's bytes kStreamPrefetchBytes further on. Out of cache on 2
// threads (Q4_0, 8960x1536, 1536x8960): adjacent-row tiles, next tile prefetched 22.6 / 22.4 GB/s;
// streams, no software prefetch 23.2 / 23.9; streams prefetching the next row 30.8 / 26.7-29.2 (read
// bandwidth 34.5). The remaining n_rows % kTileRows rows run as quads of adjacent rows.
constexpr int kTileQuads = 2;  // 8 rows: the activation groups are shared by twice the rows of a quad
constexpr int kTileRows = kQuadRows * kTileQuads;
// A fixed distance rather than one row: a whole long row ahead (5-10 KB at k = 8960) keeps too much in
// flight. Out of cache on 2 threads, three runs, one row -> 1 KiB ahead: 1536x8960 Q8_0 91-95% -> 99-103%
// of read bandwidth, Q4_0 87-89% -> 89-94%; 8960x1536 (rows of 864 / 1632 bytes) unchanged.
constexpr size_t kStreamPrefetchBytes = 1024;

template <typename Levels>
void dot_tile(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act, size_t act_stride,
              int64_t n_act, float* out, size_t out_stride) {
  int64_t stream_rows = n_rows / kTileRows;
  for (int64_t r = 0; r < stream_rows; ++r) {
    run_rows<Levels, kTileQuads>(k, w + r * w_stride, w_stride, stream_rows, kTileRows, kStreamPrefetchBytes, act, act_stride,
                                 n_act, out + r, out_stride);
  }
  for (int64_t r = stream_rows * kTileRows; r < n_rows; r += kQuadRows) {
    int n_valid = static_cast<int>(n_rows - r < kQuadRows ? n_rows - r : kQuadRows);
    run_rows<Levels, 1>(k, w + r * w_stride, w_stride, 1, n_valid, kQuadRows * w_stride, act, act_stride, n_act,
                        out + r, out_stride);
  }
}

}  // namespace qvl::avx512::block32
