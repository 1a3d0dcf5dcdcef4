#!/usr/bin/env bash
# Builds `.gpu/`, what a GPU host with no network needs to run the WebGPU checks of
# bench/gpu_session.sh: the Deno binary, node_modules without source maps and UMD bundles
# (Deno reads the ES modules), Debian's Vulkan loader and glvnd packages, and the Fashion-MNIST
# BadNets lab built here (`deno task lab`, default sizes and seed: the model a GPU purifies).
# Everything is compressed to fit a 64 MiB working-tree transfer.
#
#   bash scripts/gpu_kit.sh        # here, once (needs node_modules: `deno install --frozen`)
#   then on the GPU host, from the repo root:  bash bench/gpu_session.sh OUT_DIR
#
# `.gpu/` is ignored by git (.gitignore).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules/.deno ] || { echo "node_modules missing: run deno install --frozen" >&2; exit 2; }
lab=out/gpu_kit_lab
if [ ! -f "$lab/lab.json" ]; then deno task lab -- --out "$lab"; fi
rm -rf .gpu && mkdir -p .gpu/deb
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# node_modules as Deno laid it out (symlinks kept), less what Deno never loads here: source
# maps, minified and browser bundles.
cp -a node_modules "$stage/node_modules"
# Packages the checks never load keep only their package.json (Deno checks that each is there).
# Deno loads each package's "main" (dist/*.node.js) and type-checks against the .d.ts files.
find "$stage/node_modules/.deno" \( -name '*.map' -o -name '*.min.js' \
  -o \( -path '*/dist/tf*.js' ! -name '*.node.js' \) -o -path '*/dist/miniprogram*' \
  -o \( \( -path '*/playwright-core*/*' \
  -o -path '*/core-js*/*' \) ! -name package.json ! -name '.*' \) \) -type f -delete
tar -C "$stage" -cf - node_modules | xz -T0 -6 > .gpu/node_modules.tar.xz
xz -T0 -6 -c "$(readlink -f "$(command -v deno)")" > .gpu/deno.xz

# Vulkan loader + glvnd (NVIDIA's ICD needs libGLdispatch), downloaded, not installed.
if command -v apt-get >/dev/null 2>&1; then
  lists=$(mktemp -d)
  o="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$lists"
  mkdir -p "$lists/partial"
  # shellcheck disable=SC2086
  apt-get $o update -qq >/dev/null 2>&1 || true
  # shellcheck disable=SC2086
  (cd .gpu/deb && apt-get $o download -qq libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 \
    libglx0 libgles2 >/dev/null 2>&1) || echo "warning: Vulkan packages not downloaded" >&2
  rm -rf "$lists"
fi
tar -C "$(dirname "$lab")" -cf - "$(basename "$lab")" | xz -T0 -6 > .gpu/lab.tar.xz
du -sh .gpu/* | sort -h
echo "total: $(du -sh .gpu | cut -f1) (the transfer limit is 64 MiB)"
