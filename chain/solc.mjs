#!/usr/bin/env node
// The project's pinned solc-js (npm `solc`) behind solc's command line, for tools that run a solc
// executable: forge (foundry.toml `solc = "chain/solc.mjs"`) and Slither, through forge. Offline, and
// the same compiler that builds chain/artifacts/ (chain/build.mjs).
//
//   chain/solc.mjs --version
//   chain/solc.mjs --standard-json [--base-path DIR] [--include-path DIR]... [--allow-paths ...] < input.json
//
// forge hands every source in the standard-JSON input; the import callback (base path, include
// paths, node_modules) is only a fallback for callers that do not.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, isAbsolute, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const solc = require('solc')
const args = process.argv.slice(2)

if (args.includes('--version')) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`)
  process.exit(0)
}
if (!args.includes('--standard-json')) {
  process.stderr.write('chain/solc.mjs speaks only --version and --standard-json\n')
  process.exit(2)
}

const roots = [process.cwd()]
for (let i = 0; i < args.length; i += 1) {
  if (args[i] === '--base-path' || args[i] === '--include-path') roots.push(args[i + 1])
}
roots.push(join(ROOT, 'node_modules'))

function findImports(path) {
  for (const root of isAbsolute(path) ? [''] : roots) {
    const candidate = join(root, path)
    if (existsSync(candidate)) return { contents: readFileSync(candidate, 'utf8') }
  }
  return { error: `not found: ${path}` }
}

const input = readFileSync(0, 'utf8')
process.stdout.write(solc.compile(input, { import: findImports }))
