#!/usr/bin/env bash
# The native part of `npm test`: the whole mocha suite (reference files, gradients, generations, video, CLI) on the
# 'tensorflow' backend that `glm46v setup` built, with the tolerances the wasm run uses. Where no native build is
# there it says why and passes, unless GLM46V_REQUIRE_NATIVE=1 (CI sets it).
set -uo pipefail
cd "$(dirname "$0")/../.."
if ! reason=$(node -e '
  const s = (() => { try { return require(process.argv[1]); } catch { return undefined; } })();
  if (s && s.ok) process.exit(0);
  console.error(s ? s.reason : "glm46v setup has not run (no native/status.json)");
  process.exit(1);' "$PWD/native/status.json" 2>&1); then
  echo "native suite not run: $reason" >&2
  [ "${GLM46V_REQUIRE_NATIVE:-0}" = 1 ] && exit 1
  exit 0
fi
GLM46V_BACKEND=tensorflow npx mocha 'spec/**/*.spec.ts'
