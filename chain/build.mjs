#!/usr/bin/env node
// Compile every contract under chain/contracts with solc-js into chain/artifacts/<Name>.json.
//
//   node chain/build.mjs           write the artifacts
//   node chain/build.mjs --check   exit 1 when a committed artifact differs from a fresh build
//
// Each artifact carries `sourceHash`, which Python recomputes without node (chain/artifacts.py,
// tests/chain/test_artifacts.py) to tell a stale artifact: sha256 over
//   "ppdx-contracts-v1\n"
//   then for each .sol file under chain/contracts, sorted by its repo-relative POSIX path:
//     "<path>\n<sha256 hex of the file's bytes>\n"
//   then "chain/build.mjs\n<sha256 hex of this file's bytes>\n"   (compiler settings live here)
//   then for each devDependency in package.json, sorted by name: "<name>@<version>\n"
// (the compiler and the OpenZeppelin sources are pinned exactly there).
import { createHash } from 'node:crypto'
import { readFileSync, readdirSync, writeFileSync, mkdirSync, existsSync } from 'node:fs'
import { dirname, join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const CONTRACTS_DIR = join(ROOT, 'chain', 'contracts')
const ARTIFACTS_DIR = join(ROOT, 'chain', 'artifacts')

// The deployable contracts; interfaces and libraries get no artifact.
const ARTIFACTS = ['MockStablecoin', 'DataNFT', 'Datatoken', 'DataFactory', 'ReentrantToken']

const SETTINGS = {
  evmVersion: 'cancun',
  optimizer: { enabled: true, runs: 1_000_000 },
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
}

const sha256 = (data) => createHash('sha256').update(data).digest('hex')
const posix = (path) => path.split(sep).join('/')

function solFiles(dir) {
  const out = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...solFiles(full))
    else if (entry.name.endsWith('.sol')) out.push(posix(relative(ROOT, full)))
  }
  return out.sort()
}

function sourceHash(files) {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
  let text = 'ppdx-contracts-v1\n'
  for (const file of files) text += `${file}\n${sha256(readFileSync(join(ROOT, file)))}\n`
  text += `chain/build.mjs\n${sha256(readFileSync(fileURLToPath(import.meta.url)))}\n`
  for (const name of Object.keys(pkg.devDependencies).sort()) text += `${name}@${pkg.devDependencies[name]}\n`
  return sha256(text)
}

function findImports(path) {
  const candidate = join(ROOT, 'node_modules', path)
  if (existsSync(candidate)) return { contents: readFileSync(candidate, 'utf8') }
  return { error: `not found: ${path} (run npm ci)` }
}

function compile() {
  let solc
  try {
    solc = require('solc')
  } catch {
    console.error('solc is not installed: run `npm ci` in the repository root')
    process.exit(2)
  }
  const files = solFiles(CONTRACTS_DIR)
  const sources = Object.fromEntries(files.map((f) => [f, { content: readFileSync(join(ROOT, f), 'utf8') }]))
  const input = { language: 'Solidity', sources, settings: SETTINGS }
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }))
  const errors = (output.errors || []).filter((e) => e.severity === 'error')
  // OpenZeppelin's own warnings (e.g. on the transient reentrancy guard) are expected; ours are not.
  const shown = (output.errors || []).filter(
    (e) => e.severity === 'error' || !(e.sourceLocation && e.sourceLocation.file.startsWith('@openzeppelin/')),
  )
  for (const e of shown) console.error(e.formattedMessage)
  if (errors.length) process.exit(1)

  const hash = sourceHash(files)
  const artifacts = {}
  for (const name of ARTIFACTS) {
    const sourceName = files.find((f) => output.contracts[f] && output.contracts[f][name])
    if (!sourceName) throw new Error(`contract ${name} not found under chain/contracts`)
    const c = output.contracts[sourceName][name]
    artifacts[name] = {
      contractName: name,
      sourceName,
      abi: c.abi,
      bytecode: '0x' + c.evm.bytecode.object,
      deployedBytecode: '0x' + c.evm.deployedBytecode.object,
      sourceHash: hash,
      sourceHashScheme: 'ppdx-contracts-v1: sha256 over sorted chain/contracts/**/*.sol, chain/build.mjs, package.json devDependencies',
      compiler: { version: solc.version(), settings: { evmVersion: SETTINGS.evmVersion, optimizer: SETTINGS.optimizer } },
    }
  }
  return artifacts
}

const check = process.argv.includes('--check')
const artifacts = compile()
let stale = 0
mkdirSync(ARTIFACTS_DIR, { recursive: true })
for (const [name, artifact] of Object.entries(artifacts)) {
  const path = join(ARTIFACTS_DIR, `${name}.json`)
  const text = JSON.stringify(artifact, null, 2) + '\n'
  const size = (artifact.deployedBytecode.length - 2) / 2
  if (check) {
    const current = existsSync(path) ? readFileSync(path, 'utf8') : ''
    if (current !== text) {
      console.error(`stale: ${posix(relative(ROOT, path))}`)
      stale += 1
    }
  } else {
    writeFileSync(path, text)
    console.log(`${posix(relative(ROOT, path))}: ${size} bytes of runtime code`)
  }
}
if (check) {
  if (stale) {
    console.error('run `node chain/build.mjs` and commit chain/artifacts/')
    process.exit(1)
  }
  console.log('artifacts are up to date')
}
