#!/usr/bin/env bash
# Copies the screenshots the browser tests took (test-artifacts/screenshots/*.png, written by
# tests.browser_support.shot) to docs/screenshots/, the pictures the README shows.
#   scripts/update-screenshots.sh          copy every screenshot
#   scripts/update-screenshots.sh NAME...  copy only these (e.g. catalogue dataset-quote)
# Run the browser tests first, e.g.:
#   .venv/bin/pytest -m browser tests/browser tests/journeys && scripts/update-screenshots.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/test-artifacts/screenshots"
dst="$root/docs/screenshots"
if [ "$#" -gt 0 ]; then
  files=()
  for name in "$@"; do files+=("$src/${name%.png}.png"); done
else
  shopt -s nullglob
  files=("$src"/*.png)
fi
if [ "${#files[@]}" -eq 0 ]; then
  echo "No screenshots in $src: run the browser tests first (pytest -m browser)." >&2
  exit 1
fi
mkdir -p "$dst"
for file in "${files[@]}"; do
  if [ ! -f "$file" ]; then
    echo "missing: $file" >&2
    exit 1
  fi
  cp "$file" "$dst/"
  echo "docs/screenshots/$(basename "$file")"
done
