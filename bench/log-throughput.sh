#!/usr/bin/env bash
# Log relay benchmark: one service writes LINES (default 1,000,000) lines of
# 100 bytes. Reports lines per second through corral to a pipe (its stdout,
# read by `wc -l`) and to a rotated log file, against the same generator
# piped through `cat`, with corral's peak RSS and the lines lost. Each case
# runs REPS (default 5) times, interleaved; medians with min-max.
# Not a test: run it by hand, as root (corral runs as PID 1 under unshare).
#
#   bash bench/log-throughput.sh [LINES] [REPS]
set -eu  # no pipefail: `yes` ends by SIGPIPE on purpose
cd "$(dirname "$0")/.."
lines=${1:-1000000}
reps=${2:-5}
bash scripts/release-build -q >/dev/null
bin=$PWD/target/static/corral
work=$(mktemp -d /tmp/corral-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
payload=$(printf 'x%.0s' $(seq 1 99))   # 99 bytes + newline = 100

now() { date +%s%N; }

services() { # $1: extra [log] keys
  rm -rf "$work/services.d" "$work/log"; mkdir -p "$work/services.d"
  printf 'type = "oneshot"\nrun = "yes %s | head -n %s"\n[log]\n%s\n' "$payload" "$lines" "$1" > "$work/services.d/gen.toml"
}

corral() { # runs until the oneshot is done; the main command reports corral's peak RSS
  unshare --pid --fork --mount-proc --kill-child "$bin" --services "$work/services.d" --socket "$work/ctl.sock" -- \
    sh -c "'$bin' ctl --socket '$work/ctl.sock' --timeout 10m wait gen >/dev/null && grep VmHWM /proc/1/status >&2" \
    2> "$work/stderr"
}

declare -A ms got rss
for r in $(seq 1 "$reps"); do
  t0=$(now); n=$(yes "$payload" | head -n "$lines" | cat | wc -l); t1=$(now)
  ms[raw]+="$(( (t1 - t0) / 1000000 )) "; got[raw]+="$n "
  services ""
  t0=$(now); n=$(corral | wc -l); t1=$(now)
  ms[pipe]+="$(( (t1 - t0) / 1000000 )) "; got[pipe]+="$n "; rss[pipe]+="$(awk '/VmHWM/ {print $2}' "$work/stderr") "
  services "file = \"$work/log/current\"
max_size = \"1GiB\"
keep = 3
format = \"raw\""
  t0=$(now); corral > /dev/null; t1=$(now); n=$(cat "$work"/log/current* | wc -l)
  ms[file]+="$(( (t1 - t0) / 1000000 )) "; got[file]+="$n "; rss[file]+="$(awk '/VmHWM/ {print $2}' "$work/stderr") "
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)], a[1], a[NR]}'; }
report() { # name label
  read -r med lo hi <<< "$(echo "${ms[$1]}" | median)"
  local lost=0; for n in ${got[$1]}; do lost=$((lost + lines - n)); done
  local extra=""; [ -n "${rss[$1]:-}" ] && extra=", peak RSS $(echo "${rss[$1]}" | median | cut -d' ' -f3) KiB"
  printf '%-36s %9d lines/s  (median %d ms, %d-%d ms, lines lost %d%s)\n' "$2" $((lines * 1000 / (med > 0 ? med : 1))) "$med" "$lo" "$hi" "$lost" "$extra"
}
echo "$(nproc) cores, $lines lines of 100 bytes, $reps runs each"
report raw  "raw pipe (yes | head | cat | wc)"
report pipe "corral, prefix, stdout to a pipe"
report file "corral, raw, to a rotated log file"
