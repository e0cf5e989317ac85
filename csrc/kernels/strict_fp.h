// Include FIRST in every kernel source. Dequantization must be bit-exact with numpy, which rounds
// every product and every sum separately, so the compiler may not fuse a * b + c into one FMA on its
// own (GCC does so by default wherever FMA exists: aarch64, or x86 with -mfma). Kernels that want FMA
// ask for it explicitly with intrinsics, which this does not affect.
#pragma once
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
