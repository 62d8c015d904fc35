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

# Real components: tests that claim Redis behaviour start a real redis-server on a free
# loopback port, the archive's tests a real PostgreSQL; the local-cluster test puts haproxy in front of the nodes; the browser
# tests run Chromium. All are Debian packages.
missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v haproxy >/dev/null 2>&1 || missing="$missing haproxy"
# The archive's tests start a real PostgreSQL (Debian: /usr/lib/postgresql/<major>/bin).
if [ -z "${CHATHUB_PG_BIN:-}" ] && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  missing="$missing postgresql"
fi
# The jemalloc allocator of the `chathub` binary is built from source with make.
command -v make >/dev/null 2>&1 || missing="$missing make"
# The observability pack's alert rules are checked with promtool (Debian: prometheus).
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
# The browser tests drive Debian's Chromium (a test tool's own browser download does not
# work everywhere) with Node.js.
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || missing="$missing chromium"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing$missing (Debian packages)"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "error: missing$missing. Install (Debian/Ubuntu: sudo apt-get install$missing), then run scripts/test.sh again." >&2
    exit 1
  fi
fi

# The attachments' S3 tests talk to moto's S3 server (PyPI), started on a free port.
if ! python3 -c 'import moto.server' >/dev/null 2>&1; then
  if command -v python3 >/dev/null 2>&1; then
    echo "== installing moto[server] (PyPI: the S3-protocol server of the attachment tests)"
    python3 -m pip install --quiet 'moto[server]>=5,<6' \
      || python3 -m pip install --quiet --break-system-packages 'moto[server]>=5,<6'
  else
    echo "error: python3 not found. Install Python 3 with pip (Debian: apt-get install python3-pip), then run scripts/test.sh again." >&2
    exit 1
  fi
fi

# The admin API's OpenAPI test runs schemathesis (PyPI) against live nodes.
if ! python3 -c 'import schemathesis.cli' >/dev/null 2>&1; then
  echo "== installing schemathesis (PyPI: checks the admin API against its OpenAPI document)"
  python3 -m pip install --quiet 'schemathesis>=4.32,<5' \
    || python3 -m pip install --quiet --break-system-packages 'schemathesis>=4.32,<5'
fi

# The example bot (examples/python-bot) and its test use websockets and msgpack (PyPI).
if ! python3 -c 'import websockets.asyncio.client, msgpack' >/dev/null 2>&1; then
  echo "== installing websockets and msgpack (PyPI: the example bot)"
  python3 -m pip install --quiet 'websockets>=13,<16' 'msgpack>=1,<2' \
    || python3 -m pip install --quiet --break-system-packages 'websockets>=13,<16' 'msgpack>=1,<2'
fi

# Formatting and lints run when the toolchain has rustfmt and clippy (rustup components).
if cargo fmt --version >/dev/null 2>&1; then
  echo "== cargo fmt --check"
  cargo fmt --all -- --check
else
  echo "warning: rustfmt not installed (rustup component add rustfmt): skipping the format check" >&2
fi
if cargo clippy --version >/dev/null 2>&1; then
  echo "== cargo clippy"
  cargo clippy --workspace --all-targets --locked -- -D warnings
else
  echo "warning: clippy not installed (rustup component add clippy): skipping lints" >&2
fi
echo "== cargo test"
# The end-to-end tests run the real `chathub` binary: build it first.
cargo build --workspace --locked --bins
cargo test --workspace --locked

echo "== fuzzing: a bounded run per target (cargo-fuzz on the stable toolchain)"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz (crates.io)"
  cargo install cargo-fuzz --locked --quiet
fi
# Each target starts from the committed corpus (fuzz/corpus/TARGET, read only here) and
# writes what it finds to a scratch directory; a crash fails the run and leaves its input
# in fuzz/artifacts/TARGET.
fuzz_secs="${CHATHUB_FUZZ_SECS:-20}"
for target in decode_json decode_msgpack dispatch token; do
  scratch="$(mktemp -d)"
  status=0
  cargo fuzz run --fuzz-dir fuzz --sanitizer none "$target" "$scratch" "fuzz/corpus/$target" \
    -- -max_total_time="$fuzz_secs" -print_final_stats=1 >"$scratch.log" 2>&1 || status=$?
  echo "$target: $(grep -E '^Done' "$scratch.log" || echo 'no summary')"
  if [ "$status" != 0 ]; then
    tail -40 "$scratch.log" >&2
    echo "error: fuzz target $target failed (its input is in fuzz/artifacts/$target)" >&2
    exit 1
  fi
  rm -rf "$scratch" "$scratch.log"
done

echo "== the TypeScript SDK (clients/typescript: types vs protocol examples, bundle, TypeDoc, tests vs real nodes)"
(cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error && npm test)

echo "== browser tests (console and demo client in headless Chromium)"
# playwright-core only (no browser download), pinned by package-lock.json.
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && npm test)
