#!/usr/bin/env bash
# Builds tests/cpp/kernel_tests.cpp natively and cross-compiled for aarch64, then runs the native binary
# and the aarch64 one under qemu-user (NEON path, then forced scalar). Needs g++-aarch64-linux-gnu and
# qemu-user (apt-get install -y g++-aarch64-linux-gnu qemu-user). Build folders: build/kernel-tests-*, or
# kernel-tests-* under QVL_KERNEL_TEST_BUILD_ROOT (so that a second checkout or user builds apart).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
jobs="${QVL_BUILD_JOBS:-2}"
generator=()
if command -v ninja > /dev/null; then generator=(-G Ninja); fi

configure_and_build() {  # build_dir, extra cmake arguments...
  local build_dir="$1"
  shift
  cmake -S "$repo" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DQVL_PYTHON=OFF \
    -DQVL_KERNEL_TESTS=ON "$@" > "$build_dir.configure.log" 2>&1 || { cat "$build_dir.configure.log"; exit 1; }
  cmake --build "$build_dir" -j "$jobs" --target qvl_kernel_tests
}

build_root="${QVL_KERNEL_TEST_BUILD_ROOT:-$repo/build}"
native="$build_root/kernel-tests-native"
arm64="$build_root/kernel-tests-aarch64"
mkdir -p "$build_root"

echo "== native build"
configure_and_build "$native"
echo "== native run"
"$native/qvl_kernel_tests"

echo "== aarch64 cross build"
configure_and_build "$arm64" -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
  -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++
echo "== aarch64 run under qemu (NEON)"
qemu-aarch64 -L /usr/aarch64-linux-gnu "$arm64/qvl_kernel_tests"
echo "== aarch64 run under qemu (QVL_ISA=scalar)"
QVL_ISA=scalar qemu-aarch64 -L /usr/aarch64-linux-gnu "$arm64/qvl_kernel_tests"
