#!/usr/bin/env bash
# The CUDA toolchain that `cargo build --release --features cuda` needs, from PyPI wheels (no
# system CUDA toolkit). Source it, do not run it:
#
#   source scripts/cuda_env.sh            # installs the wheels into $CUDA_VENV once, exports paths
#   source scripts/cuda_env.sh --print    # only prints what it would install and export
#
# What the build needs and where each piece comes from:
# - nvcc and its headers (candle-kernels compiles its .cu files; cudarc reads the CUDA version
#   from `nvcc --version`): nvidia-cuda-nvcc, nvidia-cuda-runtime, nvidia-cuda-cccl.
# - the libraries cudarc links by their unversioned names (libcublas.so, libcublasLt.so,
#   libcurand.so, libnvrtc.so): the wheels ship only versioned files (libcublas.so.13), so
#   unversioned links to them go into $CUDA_VENV/link.
# - the driver library libcuda.so: it comes with the NVIDIA driver, never from a wheel, usually
#   only as libcuda.so.1; the same link directory gets libcuda.so -> the driver's libcuda.so.1.
#   On a build machine without the driver, a stub libcuda.so (soname libcuda.so.1) exporting
#   every driver function cudarc declares stands in for it, as the toolkit's lib/stubs does: the
#   binary links, and loads the real driver where it runs.
# - CUDA_COMPUTE_CAP (candle-kernels' target architecture): from nvidia-smi, else 90 (H100/H200).
# At run time the binary finds the same libraries through LD_LIBRARY_PATH.
#
# cudarc 0.19 knows CUDA up to 13.4, so the toolkit wheels are pinned to 13.2.

CUDA_VENV=${CUDA_VENV:-$PWD/target/cuda-venv}
# nvvm and crt carry the same version as nvcc: a newer nvvm writes PTX that this ptxas rejects.
CUDA_WHEELS=${CUDA_WHEELS:-"nvidia-cuda-nvcc==13.2.* nvidia-nvvm==13.2.* nvidia-cuda-crt==13.2.* nvidia-cuda-runtime==13.2.* nvidia-cuda-nvrtc==13.2.* nvidia-cuda-cccl==13.2.* nvidia-cublas nvidia-curand"}

cuda_env_main() {
  local print_only=0
  [ "${1:-}" = "--print" ] && print_only=1
  local cuda_home="$CUDA_VENV/cuda"
  local link="$CUDA_VENV/link"
  if [ "$print_only" = 1 ]; then
    echo "would install: $CUDA_WHEELS (into $CUDA_VENV)"
    echo "would export: CUDA_ROOT=$cuda_home PATH=$cuda_home/bin:\$PATH LIBRARY_PATH=$link LD_LIBRARY_PATH=$cuda_home/lib"
    echo "would link: $link/libcuda.so -> the driver's libcuda.so.1; lib*.so -> lib*.so.N of the wheels"
    return 0
  fi
  if [ ! -x "$cuda_home/bin/nvcc" ]; then
    python3 -m venv "$CUDA_VENV" || return 1
    # shellcheck disable=SC2086
    "$CUDA_VENV/bin/pip" install -q $CUDA_WHEELS || return 1
    local site
    site=$("$CUDA_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    # The cu13 wheels share one tree, nvidia/cu13/{bin,include,lib}: a CUDA_ROOT as nvcc expects.
    ln -sfn "$site/nvidia/cu13" "$cuda_home"
  fi
  mkdir -p "$link"
  local f base
  for f in "$cuda_home"/lib/lib*.so.*; do
    base=$(basename "$f")
    ln -sf "$f" "$link/${base%%.so.*}.so"
  done
  local driver
  driver=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 /{print $NF; exit}')
  for f in "$driver" /usr/lib/x86_64-linux-gnu/libcuda.so.1 /usr/lib64/libcuda.so.1 /usr/local/nvidia/lib64/libcuda.so.1; do
    if [ -n "$f" ] && [ -e "$f" ]; then ln -sf "$f" "$link/libcuda.so"; break; fi
  done
  if [ ! -e "$link/libcuda.so" ]; then
    cuda_stub_driver "$link" || return 1
  fi
  export CUDA_ROOT="$cuda_home" CUDA_PATH="$cuda_home"
  export PATH="$cuda_home/bin:$PATH"
  export LIBRARY_PATH="$link${LIBRARY_PATH:+:$LIBRARY_PATH}"
  # At run time the binary asks for the versioned names (libcublas.so.13), which stay in lib/.
  export LD_LIBRARY_PATH="$cuda_home/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if [ -z "${CUDA_COMPUTE_CAP:-}" ]; then
    CUDA_COMPUTE_CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.')
    export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
  fi
  nvcc --version | tail -1
}

# A libcuda.so exporting every driver function of cudarc's bindings (the cargo registry's copy).
cuda_stub_driver() {
  local link=$1 bindings
  bindings=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-*/src/driver/sys/mod.rs 2>/dev/null | tail -1)
  if [ -z "$bindings" ]; then
    echo "cuda_env.sh: no NVIDIA driver and no cudarc sources (run cargo fetch first)" >&2
    return 1
  fi
  echo "cuda_env.sh: no NVIDIA driver here; linking against a stub libcuda.so" >&2
  grep -o '^ *fn cu[A-Za-z0-9_]*' "$bindings" | awk '{print "void " $2 "(void) {}"}' | sort -u \
    > "$link/cuda_stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$link/libcuda.so" "$link/cuda_stub.c"
}

cuda_env_main "$@"
