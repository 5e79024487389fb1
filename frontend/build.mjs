// Bundles the browser wallet script (frontend/assets/wallet.js + ethers from node_modules) into
// frontend/static/frontend/vendor/wallet.bundle.js: one minified file served by Django, no CDN,
// no network at build time. `make` runs it after `npm ci`; `--outdir DIR` writes elsewhere.
import { build } from "esbuild";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const at = args.indexOf("--outdir");
const outdir = at >= 0 && args[at + 1] ? path.resolve(args[at + 1]) : path.join(here, "static", "frontend", "vendor");

await build({
  entryPoints: [path.join(here, "assets", "wallet.js")],
  outfile: path.join(outdir, "wallet.bundle.js"),
  bundle: true,
  minify: true,
  format: "iife",
  platform: "browser",
  target: ["es2020"],
  legalComments: "none",
  logLevel: "warning",
});
console.log(`wrote ${path.relative(process.cwd(), path.join(outdir, "wallet.bundle.js"))}`);
