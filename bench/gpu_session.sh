#!/usr/bin/env bash
# The WebGPU checks of issue 15, prepared for a lent GPU host that has no network: unpacks
# `.gpu/` (built here by scripts/gpu_kit.sh: Deno, node_modules, the Vulkan loader and glvnd, the
# Fashion-MNIST BadNets lab), then runs, each under its own time cap, writing to OUT_DIR:
#
#   part 1 (about 5 min): tests/webgpu on the GPU; bench/webgpu_check.ts (ours vs stock vs PyTorch
#     CUDA, both models, batches 32 and 256); bench/webgpu_kernels.ts; bench/webgpu_flags.ts;
#   part 2 (at most 7 min): bench/webgpu_http.ts on the lab (detect, evaluate, the default-schedule
#     purification through HTTP, evaluate) on webgpu;
#   part wasm: the same flow on wasm, for the ratio (run it here, on the same lab: it needs no GPU).
#
#   device run, carry [".gpu"]:  bash bench/gpu_session.sh "$OUT" 1   (then again with 2)
#   here, to try the mechanics on llvmpipe:  bash bench/gpu_session.sh out/gpu quick
#
# Every step's log lands in OUT_DIR even when its cap cuts it short; at most 6 files a part (the
# device returns 8), the purified models stay under out/.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: gpu_session.sh OUT_DIR 1|2|wasm|quick}
part=${2:?usage: gpu_session.sh OUT_DIR 1|2|wasm|quick}
mkdir -p "$out"
log() { echo "[$(date +%T)] $*" | tee -a "$out/session.log"; }

if [ ! -x /tmp/gpukit/deno ]; then
  mkdir -p /tmp/gpukit
  if [ "$(id -u)" = 0 ] && ls .gpu/deb/*.deb >/dev/null 2>&1 && ! ldconfig -p | grep -q libvulkan; then
    for f in .gpu/deb/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  xz -dc .gpu/deno.xz > /tmp/gpukit/deno && chmod +x /tmp/gpukit/deno
  [ -d node_modules/.deno ] || tar -xJf .gpu/node_modules.tar.xz
  mkdir -p out && [ -d out/gpu_kit_lab ] || tar -C out -xJf .gpu/lab.tar.xz
fi
export PATH=/tmp/gpukit:$PATH DENO_NO_UPDATE_CHECK=1
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$egl
# The first interpreter that has torch (the host's own, else Debian's).
PYTHON=/usr/bin/python3
for p in "$(command -v python3)" /usr/bin/python3 /usr/local/bin/python3; do
  if [ -x "$p" ] && "$p" -c 'import torch' 2>/dev/null; then PYTHON=$p && break; fi
done
export PYTHON
log "part $part; $(deno --version | head -1); $(nvidia-smi -L 2>/dev/null | head -1)"
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' \
  2>&1 | tee -a "$out/session.log"

step() { # step NAME CAP_SECONDS COMMAND...
  local name=$1 cap=$2
  shift 2
  log "start $name (cap ${cap}s)"
  timeout "$cap" "$@" > "$out/$name.log" 2>&1
  log "end $name rc=$?"
}

case "$part" in
  1)
    step test_webgpu 120 env BACKEND=webgpu deno task test:webgpu
    step webgpu_check 240 env BACKEND=webgpu deno run -A bench/webgpu_check.ts \
      --batches 32,256 --reps 5 --out "$out/webgpu_check.json"
    step webgpu_kernels 60 env BACKEND=webgpu deno run -A bench/webgpu_kernels.ts \
      --batches 32,256 --reps 5
    step webgpu_flags 60 env BACKEND=webgpu deno run -A bench/webgpu_flags.ts --batch 256 --reps 5
    ;;
  2)
    step http_webgpu 420 deno run -A bench/webgpu_http.ts out/gpu_kit_lab \
      --out out/http_webgpu
    ;;
  wasm) # the same flow on wasm (about 450 s on 2 cores): run it where device time is not spent
    step http_wasm 900 deno run -A bench/webgpu_http.ts out/gpu_kit_lab --backend wasm \
      --out out/http_wasm
    ;;
  quick)
    step test_webgpu 600 env BACKEND=webgpu deno task test:webgpu
    step webgpu_check 600 env BACKEND=webgpu deno run -A bench/webgpu_check.ts --quick \
      --out "$out/webgpu_check.json"
    ;;
  *) log "unknown part $part" && exit 2 ;;
esac
log "done"
