#!/usr/bin/env bash
# The browser part of `npm test`: typechecks web/, builds the bundle (scripts/web/build.mjs) and runs
# scripts/web/browser.spec.ts, which serves the page (glm46v web --port 0) and drives Debian's chromium headless.
# Where chromium is missing it says why and passes, unless GLM46V_REQUIRE_BROWSER=1 (CI sets it).
set -uo pipefail
cd "$(dirname "$0")/../.."
CHROMIUM="${GLM46V_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  echo "browser specs not run: no chromium at $CHROMIUM (bash scripts/web/setup_chromium.sh installs it)" >&2
  [ "${GLM46V_REQUIRE_BROWSER:-0}" = 1 ] && exit 1
  exit 0
fi
set -e
npx tsc -p web/tsconfig.json
node scripts/web/build.mjs
GLM46V_CHROMIUM="$CHROMIUM" npx mocha scripts/web/browser.spec.ts
