#!/usr/bin/env bash
# Installs what Dawn (npm `webgpu`) needs to run WebGPU on a machine without a GPU driver: the Vulkan loader and
# Mesa's software Vulkan driver lavapipe, Mesa >= 25. Debian bookworm ships Mesa 22, whose lavapipe lacks
# shaderUniform*ArrayDynamicIndexing (Dawn: "Vulkan shaderUniform*ArrayDynamicIndexing required"), so on bookworm
# Mesa comes from bookworm-backports. Idempotent and quiet: one line when already installed; apt's output is kept
# in a log and shown only on failure. Needs root (or sudo). A machine with an NVIDIA/AMD Vulkan driver needs none of it.
set -euo pipefail

MIN_MESA=25
LOG="${TMPDIR:-/tmp}/glm46v-setup-vulkan.log"

installed_version() { # prints the installed version of package $1, or nothing
  dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null | awk '$3 == "installed" { print $4 }'
}

lavapipe_ready() {
  local mesa
  mesa="$(installed_version mesa-vulkan-drivers)"
  [ -n "$mesa" ] && [ -n "$(installed_version libvulkan1)" ] &&
    dpkg --compare-versions "$mesa" ge "$MIN_MESA" &&
    compgen -G '/usr/share/vulkan/icd.d/lvp_icd*.json' >/dev/null
}

if ! command -v dpkg-query >/dev/null; then
  echo "setup_vulkan: not a Debian-based system; install Mesa >= $MIN_MESA's Vulkan drivers (lavapipe) by hand" >&2
  exit 1
fi
if lavapipe_ready; then
  echo "setup_vulkan: Mesa $(installed_version mesa-vulkan-drivers) lavapipe already installed"
  exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup_vulkan: run as root (apt-get install is needed)" >&2; exit 1; }
  SUDO=(sudo)
fi

codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
target=()
start=$SECONDS
: >"$LOG"
if [ "$codename" = bookworm ]; then
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' 'Components: main' \
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' |
      "${SUDO[@]}" tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
  fi
  target=(-t bookworm-backports)
fi

fail() {
  echo "setup_vulkan: $1 (apt log: $LOG)" >&2
  tail -n 20 "$LOG" >&2
  exit 1
}

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q >>"$LOG" 2>&1 || fail "apt-get update failed"
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${target[@]}" mesa-vulkan-drivers libvulkan1 >>"$LOG" 2>&1 ||
  fail "apt-get install mesa-vulkan-drivers libvulkan1 failed"
lavapipe_ready || fail "installed Mesa $(installed_version mesa-vulkan-drivers) but need >= $MIN_MESA with lvp_icd"
echo "setup_vulkan: installed Mesa $(installed_version mesa-vulkan-drivers) lavapipe in $((SECONDS - start)) s"
