#!/usr/bin/env bash
# The packaging part of `npm test`, run once rather than once per backend: packs the package (prepack builds dist/),
# installs the tarball into a temporary project and runs there the README's TypeScript example as written, its two
# commands' equivalents, import and require (spec/package/installed_package.ts). npm install needs the registry or
# npm's cache for the dependencies; the postinstall reuses the native build in ~/.cache/glm46v.
set -euo pipefail
cd "$(dirname "$0")/../.."
npx mocha spec/package/installed_package.ts
