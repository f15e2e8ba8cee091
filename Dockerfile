# The image the Helm chart runs (charts/ferry): the agent and the controller, chosen by the first
# argument (bin/ferry-image). Not built on the project's machines (no container builder there):
# what CI checks is the chart that runs it and the code inside it.
# ferry's CUDA helper (workload/cuda-ckpt.c): libcuda is opened at run time, so it builds without
# CUDA; on a GPU node the chart (agent.gpu) mounts the driver's folder and names libcuda.so.1 in
# FERRY_LIBCUDA, which the helper opens by path.
FROM debian:bookworm-slim AS cuda-helper
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY workload/cuda-ckpt.c /src/
RUN gcc -O2 -Wall -o /src/ferry-cuda /src/cuda-ckpt.c -ldl

FROM node:20-bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      runc iptables btrfs-progs iproute2 zstd tar openssl ca-certificates util-linux busybox-static \
      containerd skopeo umoci attr \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY scripts/install-criu.sh scripts/unstable-debs.sh scripts/
RUN FERRY_IMAGE_BUILD=1 bash scripts/install-criu.sh
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error
COPY . .
# What scripts/setup.sh installs beside CRIU on the local cluster's machine.
RUN mkdir -p /opt/ferry/etc \
 && install -m 0755 scripts/criu-action.sh /opt/ferry/bin/criu-action \
 && install -m 0755 scripts/run-logged.sh /opt/ferry/bin/ferry-run-logged \
 && install -m 0755 scripts/netns-plumb.sh /opt/ferry/bin/ferry-netns-plumb \
 && echo "action-script /opt/ferry/bin/criu-action" > /opt/ferry/etc/criu.conf
COPY --from=cuda-helper /src/ferry-cuda /opt/ferry/bin/ferry-cuda
ENTRYPOINT ["/app/bin/ferry-image"]
