// Q8_0 on AVX-512: the decode (row-dot) kernel, against ActQ8_32 activation blocks.
//
// Four consecutive blocks of a row (136 bytes) meet the activations in two 512-bit vectors, one
// block per 128-bit lane: `low` holds values 0..15 of each block, `high` values 16..31. Each is one
// word permute of two 64-byte loads (the second pair loaded 8 bytes further on, so that no load
// reaches past the group). VNNI dpbusd wants one unsigned operand: the signed levels are flipped to
// unsigned (xor 0x80 = level + 128) and the accumulator starts at -128 * sum(activations) per block,
// formed once per activation group for all rows, so every block's integer sum is exactly the scalar
// reference's. The four int32 partial sums a block leaves are reduced for four rows at once (unpacks
// and adds): one vector then holds rows 0..3 x blocks 0..3, and the float work (conversion, the 16
// fp16 scales converted together, one FMA) is done once per 16 row-blocks.
#include "kernels/strict_fp.h"

#include <immintrin.h>

#include <cstring>

#include "kernels/blocks.h"
#include "kernels/kernel_table.h"

namespace qvl::avx512 {
namespace {

constexpr int kQuadRows = 4;
constexpr int kGroupBlocks = 4;  // blocks per vector: one per 128-bit lane
constexpr size_t kGroupBytes = kGroupBlocks * sizeof(BlockQ8_0);  // 136
constexpr int kBlockWords = sizeof(BlockQ8_0) / 2;                // 17: the scale, then 16 words of levels
constexpr int kHighShiftBytes = 8;  // the second pair of loads: bytes 8..135 of the group

// Word w of `low` (block w / 8, level words w % 8) from words 0..63 of the group.
__m512i low_word_index() {
  alignas(64) int16_t index[32];
  for (int w = 0; w < 32; ++w) index[w] = static_cast<int16_t>(kBlockWords * (w / 8) + 1 + w % 8);
  return _mm512_load_si512(index);
}

// Word w of `high` (block w / 8, level words 8 + w % 8) from words 4..67 of the group.
__m512i high_word_index() {
  alignas(64) int16_t index[32];
  for (int w = 0; w < 32; ++w) {
    index[w] = static_cast<int16_t>(kBlockWords * (w / 8) + 9 + w % 8 - kHighShiftBytes / 2);
  }
  return _mm512_load_si512(index);
}

// Word 4j + r (j < 4 blocks, every r) = the scale of block j, from words 0..63 of a row's group; a
// blend per row r then keeps lanes 4j + r of row r.
__m512i scale_word_index() {
  alignas(64) int16_t index[32] = {};
  for (int w = 0; w < 16; ++w) index[w] = static_cast<int16_t>(kBlockWords * (w / 4));
  return _mm512_load_si512(index);
}
constexpr __mmask32 kRowLanes = 0x1111;  // lanes 4j of row 0; shifted left by r for row r

// One activation row's group of 4 blocks, laid out as the weights: lane j of `low` = values 0..15 of
// block j, of `high` = values 16..31; `start` = -128 * the block's sum of levels (its 4 lanes
// together); `scale` lanes 4j..4j+3 = block j's d.
struct ActGroup {
  __m512i low, high, start;
  __m512 scale;
};

inline ActGroup load_act_group(const ActQ8_32* a) {
  auto levels = [&](int j) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[j].qs)); };
  __m512i blocks01 = _mm512_inserti64x4(_mm512_castsi256_si512(levels(0)), levels(1), 1);
  __m512i blocks23 = _mm512_inserti64x4(_mm512_castsi256_si512(levels(2)), levels(3), 1);
  ActGroup g;
  g.low = _mm512_shuffle_i64x2(blocks01, blocks23, _MM_SHUFFLE(2, 0, 2, 0));
  g.high = _mm512_shuffle_i64x2(blocks01, blocks23, _MM_SHUFFLE(3, 1, 3, 1));
  const __m512i offset = _mm512_set1_epi8(static_cast<char>(0x80));  // 128 as the unsigned operand
  __m512i offset_sums = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), offset, g.low), offset, g.high);
  g.start = _mm512_sub_epi32(_mm512_setzero_si512(), offset_sums);
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

struct Indices {
  __m512i low, high, scale;
};

// Weight rows in quads of 4 and C activation rows; acc[q][c] lane 4j + r collects row 4q + r.
template <int Quads, int C>
struct Q8_0Tile {
  static constexpr int kRows = kQuadRows * Quads;
  const uint8_t* rows[kRows];
  const ActQ8_32* acts[C];
  __m512 acc[Quads][C];

  // Blocks 4g..4g+3 of every row against the same blocks of every activation row (offsets in groups).
  inline void step(int64_t g, const Indices& index) {
    const __m512i sign_flip = _mm512_set1_epi8(static_cast<char>(0x80));
    ActGroup a[C];
    for (int c = 0; c < C; ++c) a[c] = load_act_group(acts[c] + g * kGroupBlocks);
    for (int q = 0; q < Quads; ++q) {
      __m512i low[kQuadRows], high[kQuadRows], scales = _mm512_setzero_si512();
      for (int r = 0; r < kQuadRows; ++r) {
        const uint8_t* group = rows[kQuadRows * q + r] + g * kGroupBytes;
        __m512i head = _mm512_loadu_si512(group), next = _mm512_loadu_si512(group + 64);
        __m512i shifted_head = _mm512_loadu_si512(group + kHighShiftBytes);
        __m512i shifted_next = _mm512_loadu_si512(group + kHighShiftBytes + 64);
        low[r] = _mm512_xor_si512(_mm512_permutex2var_epi16(head, index.low, next), sign_flip);
        high[r] = _mm512_xor_si512(_mm512_permutex2var_epi16(shifted_head, index.high, shifted_next), sign_flip);
        scales = _mm512_mask_blend_epi16(kRowLanes << r, scales, _mm512_permutex2var_epi16(head, index.scale, next));
      }
      __m512 w_scale = _mm512_cvtph_ps(_mm512_castsi512_si256(scales));
      for (int c = 0; c < C; ++c) {
        __m512i sums[kQuadRows];
        for (int r = 0; r < kQuadRows; ++r) {
          sums[r] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a[c].start, low[r], a[c].low), high[r], a[c].high);
        }
        __m512i block_sums = reduce_four_rows(sums[0], sums[1], sums[2], sums[3]);
        acc[q][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(block_sums), _mm512_mul_ps(w_scale, a[c].scale), acc[q][c]);
      }
    }
  }

  // The 1..3 blocks past the last whole group, through zero-padded copies (zero levels and scales add
  // nothing): no load reaches past a row's end.
  inline void step_tail(int64_t g, int blocks, const Indices& index) {
    alignas(64) uint8_t w_copy[kRows][kGroupBytes] = {};
    alignas(64) ActQ8_32 a_copy[C][kGroupBlocks] = {};
    Q8_0Tile padded = *this;
    for (int r = 0; r < kRows; ++r) {
      std::memcpy(w_copy[r], rows[r] + g * kGroupBytes, blocks * sizeof(BlockQ8_0));
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
// further on: at 0, 64 and 128 bytes into the 136-byte group, so successive groups' prefetches are
// never more than a line apart and every line of the row is touched.
template <int Quads, int C>
void run_tile(int64_t k, const uint8_t* w, size_t w_stride, int64_t row_step, int n_valid, size_t ahead,
              const uint8_t* act, size_t act_stride, float* out, size_t out_stride) {
  Q8_0Tile<Quads, C> tile;
  constexpr int kRows = Q8_0Tile<Quads, C>::kRows;
  for (int r = 0; r < kRows; ++r) tile.rows[r] = w + (r < n_valid ? r : n_valid - 1) * row_step * w_stride;
  for (int c = 0; c < C; ++c) tile.acts[c] = reinterpret_cast<const ActQ8_32*>(act + c * act_stride);
  for (int q = 0; q < Quads; ++q) {
    for (int c = 0; c < C; ++c) tile.acc[q][c] = _mm512_setzero_ps();
  }
  const Indices index{low_word_index(), high_word_index(), scale_word_index()};
  int64_t n_blocks = k / kBlock32, groups = n_blocks / kGroupBlocks;
  for (int64_t g = 0; g < groups; ++g) {
    for (int r = 0; r < kRows; ++r) {
      const char* next = reinterpret_cast<const char*>(tile.rows[r] + ahead + g * kGroupBytes);
      _mm_prefetch(next, _MM_HINT_T1);
      _mm_prefetch(next + 64, _MM_HINT_T1);
      _mm_prefetch(next + 128, _MM_HINT_T1);
    }
    tile.step(g, index);
  }
  if (int rest = static_cast<int>(n_blocks % kGroupBlocks); rest > 0) tile.step_tail(groups, rest, index);
  tile.store(out, out_stride, row_step, n_valid);
}

template <int Quads>
void run_rows(int64_t k, const uint8_t* w, size_t w_stride, int64_t row_step, int n_valid, size_t ahead,
              const uint8_t* act, size_t act_stride, int64_t n_act, float* out, size_t out_stride) {
  int64_t j = 0;
  for (; j + 2 <= n_act; j += 2) {
    run_tile<Quads, 2>(k, w, w_stride, row_step, n_valid, ahead, act + j * act_stride, act_stride,
                       out + j * out_stride, out_stride);
  }
  if (j < n_act) {
    run_tile<Quads, 1>(k, w, w_stride, row_step, n_valid, ahead, act + j * act_stride, act_stride,
                       out + j * out_stride, out_stride);
  }
}

// Stream order, as in q4_0_avx512.cpp: the rows are cut into kTileRows streams of consecutive rows
// and a tile takes row t of every stream, so each stream is read in address order (the L2 streamer
// follows it) and the software prefetches fetch the same bytes of each stream's next row. The
// remaining n_rows % kTileRows rows run as quads of adjacent rows.
constexpr int kTileQuads = 2;  // 8 rows: the activation groups are shared by twice the rows of a quad
constexpr int kTileRows = kQuadRows * kTileQuads;

void dot_tile_q8_0(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act, size_t act_stride,
                   int64_t n_act, float* out, size_t out_stride) {
  int64_t stream_rows = n_rows / kTileRows;
  for (int64_t r = 0; r < stream_rows; ++r) {
    run_rows<kTileQuads>(k, w + r * w_stride, w_stride, stream_rows, kTileRows, w_stride, act, act_stride, n_act,
                         out + r, out_stride);
  }
  for (int64_t r = stream_rows * kTileRows; r < n_rows; r += kQuadRows) {
    int n_valid = static_cast<int>(n_rows - r < kQuadRows ? n_rows - r : kQuadRows);
    run_rows<1>(k, w + r * w_stride, w_stride, 1, n_valid, kQuadRows * w_stride, act, act_stride, n_act, out + r,
                out_stride);
  }
}

}  // namespace

void add_q8_0(IsaKernels& table) { table.q8_0.dot_tile = dot_tile_q8_0; }

}  // namespace qvl::avx512
