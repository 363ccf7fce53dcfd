# make bench: lf-buffer through a Unix socket with acks, then a consumer
# with a no-op destination draining the same spool (lib/consume).
set -eu
spool=$(mktemp -d /tmp/lf-bench.XXXXXX)
trap 'rm -rf "$spool"' EXIT
"$LF_BENCH/bench_buffer" "$LF_BIN/lf-buffer" "$spool/spool" 2000 4 8
events=$("$LF_BIN/lf-spool" stat --json "$spool/spool" |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["ready"]["events"])')
bytes=$(du -sb "$spool/spool/new" | cut -f1)
fake=$LF_BIN/../tests/tools/fakedest
[ -x "$fake" ] || make -s "${LF_BIN%/bin}/tests/tools/fakedest"
t0=$(date +%s.%N)
"$fake" --noop --once --flush-thread-count 2 "$spool/spool"
t1=$(date +%s.%N)
/usr/bin/python3 - "$events" "$bytes" "$t0" "$t1" <<'PY'
import sys
ev, by, t0, t1 = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
t = t1 - t0
print("consumer (no-op destination, --once): %.0f events/s %.1f MB/s (%d events, %.3f s)"
      % (ev / t, by / t / 1e6, ev, t))
PY
