#!/usr/bin/env bash
# Installs the Debian packages the project needs when they are missing. Uses sudo when not root.
#   (no argument)  everything the test suite needs: bubblewrap and libseccomp2 (compute-job sandboxes) and chromium
#                  (browser tests)
#   --runtime      only what running the app needs: bubblewrap, libseccomp2, and Debian's Python 3.11 for inside
#                  the sandbox (its unprivileged uid cannot read a Python installed under /root)
set -euo pipefail
mode="all"
case "${1:-}" in
  "") ;;
  --runtime) mode="runtime" ;;
  *) echo "usage: $0 [--runtime]" >&2; exit 2 ;;
esac
need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
# The sandbox's seccomp filter is built by libseccomp (through pyseccomp).
ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || need+=(libseccomp2)
[ -x /usr/bin/python3.11 ] || need+=(python3.11)
if [ "$mode" = "all" ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
fi
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "Installing Debian packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
