#!/usr/bin/env bash
# Prepares a fresh Debian machine for tsvmm's tests: the Debian packages the tests use
# (a real browser, QEMU as the interpreter's oracle and the benchmarks' peer, a C compiler for
# the KVM floor benchmarks) and the guest images. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(chromium qemu-system-x86 gcc make)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # A mirror caught mid-sync makes apt-get update report errors while the packages still install.
    apt-get update -q || echo "setup: apt-get update reported errors; trying the install anyway"
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    echo "setup: these Debian packages are missing: ${missing[*]}" >&2
    echo "setup: install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

node bin/tsvmm.js image build
