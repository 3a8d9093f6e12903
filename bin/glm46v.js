#!/usr/bin/env node
// The `glm46v` command: runs the compiled CLI when the package is built, else the TypeScript source through tsx.
const fs = require('fs');
const path = require('path');
const compiled = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
const source = path.join(__dirname, '..', 'cli', 'main.ts');
if (fs.existsSync(source)) {
  // both hooks: main.ts loads its sub-commands with import(), which the CommonJS hook alone does not resolve
  require('tsx/cjs/api').register();
  require('tsx/esm/api').register();
  require(source);
} else {
  require(compiled);
}
