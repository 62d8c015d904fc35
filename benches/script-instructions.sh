#!/bin/sh
# Instructions Redis executes per command inside the apply function (FCALL), counted by
# valgrind's callgrind: the same count on every run for the same build and Redis, whatever
# else the machine is doing — unlike CPU time on a shared 2-core box, so a change to
# lua/apply.lua (or to what the node sends it) can be compared in one run each.
#
# It runs `chathub-bench script-cost` against a redis-server started under callgrind,
# collecting only inside `fcallCommand` and dumping after each `INFO` (script-cost asks
# INFO three times per kind of command: before, after, and its commandstats, so dumps 2,
# 5, 8 and 11 hold exactly one kind each; see benches/src/script_cost.rs).
#
# usage: benches/script-instructions.sh [BENCH_BINARY] [MESSAGES] [CONVERSATIONS]
#   BENCH_BINARY  default target/release/chathub-bench (a debug build counts the same:
#                 only Redis is measured)
#   MESSAGES      commands of each kind (default 1000; ~1 s of valgrind per 500)
# Needs valgrind (Debian: apt-get install valgrind) and redis-server.
set -eu
bench=${1:-target/release/chathub-bench}
messages=${2:-1000}
conversations=${3:-200}
redis=$(command -v redis-server) || { echo "redis-server is not installed" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# script-cost starts `redis-server` from PATH: this one runs the real one under callgrind.
mkdir "$work/bin"
cat > "$work/bin/redis-server" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --toggle-collect=fcallCommand --dump-after=infoCommand \
  --callgrind-out-file=$work/cg.%p "$redis" "\$@" 2>>"$work/valgrind.log"
EOF
chmod +x "$work/bin/redis-server"
if ! PATH="$work/bin:$PATH" "$bench" script-cost --conversations "$conversations" \
  --messages "$messages" > "$work/bench.log" 2>&1; then
  cat "$work/bench.log" >&2
  exit 1
fi
n=2
for kind in "end user message (unanswered)" "agent message (owned)" \
  "agent message with client_msg_id" "agent message, 64 in flight"; do
  dump=$(ls "$work"/cg.*."$n" 2>/dev/null | head -n 1)
  if [ -z "$dump" ]; then echo "no callgrind dump $n (see $work/valgrind.log)" >&2; exit 1; fi
  total=$(sed -n 's/^summary: //p' "$dump")
  printf '%-36s %8d instructions per command\n' "$kind" $((total / messages))
  n=$((n + 3))
done
