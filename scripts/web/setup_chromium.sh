#!/usr/bin/env bash
# Installs Debian's chromium, the browser the web specs drive headless (scripts/web/test_web.sh, playwright-core with
# the system browser: no browser download). Idempotent and quiet like scripts/gpu/setup_vulkan.sh: one line when it is
# already there; apt's output goes to a log shown only on failure. Needs root (or sudo).
set -euo pipefail

LOG="${TMPDIR:-/tmp}/glm46v-setup-chromium.log"
if [ -x /usr/bin/chromium ]; then
  echo "setup_chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n 1) already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup_chromium: not a Debian-based system; install chromium at /usr/bin/chromium by hand" >&2
  exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup_chromium: run as root (apt-get install is needed)" >&2; exit 1; }
  SUDO=(sudo)
fi
fail() {
  echo "setup_chromium: $1 (apt log: $LOG)" >&2
  tail -n 20 "$LOG" >&2
  exit 1
}
start=$SECONDS
: >"$LOG"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q >>"$LOG" 2>&1 || fail "apt-get update failed"
"${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium >>"$LOG" 2>&1 || fail "apt-get install chromium failed"
[ -x /usr/bin/chromium ] || fail "chromium installed but /usr/bin/chromium is missing"
echo "setup_chromium: installed $(/usr/bin/chromium --version 2>/dev/null | head -n 1) in $((SECONDS - start)) s"
