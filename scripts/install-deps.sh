#!/usr/bin/env bash
# Install everything npa needs to build, test, demo and benchmark, from
# Debian 12's packages only. Idempotent; quiet unless something is missing.
# Usage: scripts/install-deps.sh [--lab]   (as root)
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build pkg-config git
  libabsl-dev liburing-dev libpci-dev linux-libc-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  protobuf-compiler libprotobuf-dev libssl-dev openssl nlohmann-json3-dev
  libsystemd-dev systemd prometheus-cpp-dev dpkg-dev fakeroot file
  clang-14 libclang-rt-14-dev libfuzzer-14-dev
  dpdk dpdk-dev libdpdk-dev
  iproute2 iputils-ping procps psmisc python3 util-linux
  qemu-system-x86 busybox-static cpio xz-utils bc binutils
  valgrind
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run as root" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# --no-install-recommends keeps QEMU at ~18 MB instead of ~160 MB (lab NOTES).
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
