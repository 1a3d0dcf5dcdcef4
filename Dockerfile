# syntax=docker/dockerfile:1
# purifier: multi-stage build. Stage 1 resolves npm dependencies (cached in their own layer,
# keyed on deno.json + deno.lock only); stage 2 is the runtime with a non-root user.
ARG DENO_VERSION=2.9.6

FROM node:20-bookworm-slim AS deno
ARG DENO_VERSION
RUN npm install -g "deno@${DENO_VERSION}" && cp "$(readlink -f "$(command -v deno)")" /deno \
  || cp "$(npm root -g)/deno/deno" /deno
RUN /deno --version

FROM debian:bookworm-slim AS deps
COPY --from=deno /deno /usr/local/bin/deno
WORKDIR /app
ENV DENO_DIR=/app/.deno
COPY deno.json deno.lock ./
# Resolve and cache the pinned npm packages (node_modules, incl. the tfjs wasm binaries).
RUN deno install --frozen

FROM debian:bookworm-slim AS runtime
# For the WebGPU backend on an NVIDIA host, Deno's WebGPU goes through Vulkan: install the loader
# and glvnd, and run the container with NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics.
# Measured on an H200 host: with libvulkan1 alone `requestAdapter()` returned null (NVIDIA's
# Vulkan ICD is libGLX_nvidia.so.0, which needs glvnd's libGLdispatch); with the glvnd packages
# below added (the set that was tested, ~250 kB) the adapter was the GPU.
RUN apt-get update && apt-get install -y --no-install-recommends libvulkan1 libglvnd0 libegl1 \
  libgl1 libglx0 libopengl0 libgles2 ca-certificates curl \
  && rm -rf /var/lib/apt/lists/* \
  && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin purifier
COPY --from=deno /deno /usr/local/bin/deno
WORKDIR /app
ENV DENO_DIR=/app/.deno \
    DENO_NO_UPDATE_CHECK=1 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics \
    PORT=8000
COPY --from=deps /app/.deno /app/.deno
COPY --from=deps /app/node_modules /app/node_modules
COPY deno.json deno.lock ./
COPY src ./src
COPY routes ./routes
# Type-check and cache the entry point at build time so start-up does no compilation.
RUN deno cache src/main.ts && chown -R purifier:purifier /app/.deno
USER purifier
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${PORT}/healthz" || exit 1
# Same task as the README's start command (`deno task start`): only the permissions it needs.
CMD ["deno", "task", "start"]
