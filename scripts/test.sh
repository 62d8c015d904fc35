#!/usr/bin/env bash
# The test command (README.md): checks formatting and lints, then runs every test of the
# workspace — unit, property, protocol-vector and end-to-end tests over real sockets and
# real `chathub` processes. Installs what the tests need when it is missing, or stops
# with a message saying exactly what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found. Install Rust (https://rustup.rs), then run scripts/test.sh again." >&2
  exit 1
fi

# Tests that claim Redis behaviour start a real redis-server (Debian package
# `redis-server`) on a free loopback port.
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing redis-server (Debian package)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "error: redis-server not found. Install it (Debian/Ubuntu: sudo apt-get install redis-server), then run scripts/test.sh again." >&2
    exit 1
  fi
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
