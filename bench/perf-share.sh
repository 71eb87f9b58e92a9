#!/bin/bash
# One `many-sessions` run of pollcast alone (or of the naive server: TARGET=baseline) with `perf record` attached to
# the server for 16 s of its measured window (from 12 s after it starts), then where its CPU samples went
# (bench/perf-categories.ts). Needs perf (Debian's linux-perf) and perf_event_paranoid <= 2.
#   bash bench/perf-share.sh OUT_DIR [REPO]
set -euo pipefail
out=$1; repo=${2:-$(cd "$(dirname "$0")/.." && pwd)}; target=${TARGET:-pollcast}
pattern=$([ "$target" = baseline ] && echo 'baseline.mjs' || echo 'dist/cli.js')
mkdir -p "$out"
( seen=""; while true; do for pid in $(pgrep -f "$pattern"); do case " $seen " in *" $pid "*) continue;; esac; seen="$seen $pid"
    ( sleep 12; timeout -s INT 16 perf record -e cpu-clock -F 2000 -g -p "$pid" -o "$out/perf.data" > /dev/null 2>&1 || true ) & done; sleep 0.5; done ) &
watcher=$!
trap 'kill $watcher 2> /dev/null || true' EXIT
(cd "$repo" && node bench/run.ts --only many-sessions --targets "$target" --quiet-wait 5 --node-flags="--perf-basic-prof --logfile=/dev/null --no-logfile-per-isolate" > "$out/run.log" 2>&1)
sleep 1
perf script -i "$out/perf.data" -F comm,tid,ip,sym 2> /dev/null > "$out/perf.txt"
grep -E "many-sessions \| $target" "$out/run.log" | head -1 | cut -c1-110
node "$(dirname "$0")/perf-categories.ts" "$out/perf.txt"
