# make bench: lf-recv, the forward server, through to lf-buffer's spool.
#
# 1. Throughput: bench_fwd (C, one thread, poll) opens 8 TCP connections
#    to lf-recv --to lf-buffer and sends PackedForward messages of 1,000
#    events of ~150 bytes, each with a chunk id, keeping 4 unacked per
#    connection; lf-recv acks a message once lf-buffer acked it (fsync'd
#    into the spool).  Reports events/s (first connect to last ack), the
#    ack latency (a message's first byte written to its ack read: median,
#    p99), and for lf-recv and lf-buffer apart their CPU seconds per
#    million events (utime + stime from /proc/PID/stat over the run) and
#    peak RSS (VmHWM).  Three runs, each on a fresh spool, each followed
#    by the same straight into lf-buffer's socket, without lf-recv, for
#    comparison (the spool's disk sets the pace: TMPDIR chooses where it
#    is).
# 2. Idle connections: 10,000 TCP connections that send nothing, held by a
#    fresh lf-recv; its RSS (VmRSS) with them, and before them.  The open
#    files limit is raised to 65536 for both processes where the hard
#    limit allows (as root it does), else to the hard limit.
#
# LF_BENCH_EVENTS (2,000,000) and LF_BENCH_IDLE (10,000) change the sizes.
set -eu
events=${LF_BENCH_EVENTS:-2000000}
nidle=${LF_BENCH_IDLE:-10000}
conns=8
window=4
bin=$LF_BIN
fwd=$LF_BENCH/bench_fwd
hz=$(getconf CLK_TCK)

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "open files limit: $(ulimit -n)"

d=$(mktemp -d "${TMPDIR:-/tmp}/lfrecv.XXXXXX")
pids=""
cleanup() {
	for p in $pids; do
		kill -9 "$p" 2>/dev/null || true
	done
	rm -rf "$d"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# wait_ready FILE PID: the newline of --notify-fd, within 30 s
wait_ready() {
	i=0
	while [ ! -s "$1" ]; do
		if ! kill -0 "$2" 2>/dev/null || [ $i -ge 600 ]; then
			echo "recv.sh: not ready: $1" >&2
			cat "$d"/*.err >&2 2>/dev/null || true
			exit 1
		fi
		i=$((i + 1))
		sleep 0.05
	done
}
cpu() {		# clock ticks of user and system time of PID
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}
kb() {		# kb FIELD PID: a kB figure of /proc/PID/status
	awk -v f="$1:" '$1 == f { print $2 }' "/proc/$2/status"
}
mb() {
	awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'
}
per_m() {	# CPU seconds per million events from a tick count
	awk -v t="$1" -v hz="$hz" -v n="$events" \
	    'BEGIN { printf "%.2f", t / hz / n * 1e6 }'
}

# start_buffer: lf-buffer on $d/s into a fresh $d/spool; sets bpid
start_buffer() {
	rm -rf "$d/spool" "$d/bready"
	"$bin/lf-buffer" --listen "unix:$d/s" --notify-fd 3 \
	    --flush-interval 1s --chunk-limit-size 8m "$d/spool" \
	    3>"$d/bready" 2>>"$d/buffer.err" &
	bpid=$!
	pids="$pids $bpid"
	wait_ready "$d/bready" "$bpid"
}
# start_recv: lf-recv on 127.0.0.1:$port --to lf-buffer; sets rpid
start_recv() {
	rm -f "$d/rready"
	"$bin/lf-recv" --listen "127.0.0.1:$port" --to "unix:$d/s" \
	    --notify-fd 3 3>"$d/rready" 2>>"$d/recv.err" >/dev/null &
	rpid=$!
	pids="$pids $rpid"
	wait_ready "$d/rready" "$rpid"
}
stop() {
	kill "$1"
	wait "$1" || { echo "recv.sh: exit status $? of pid $1" >&2; exit 1; }
}

echo "$conns connections, PackedForward messages of 1,000 events, $window" \
    "in flight each, acked end to end (lf-buffer fsync'd; the spool on" \
    "$(df -PT "$d" | awk 'NR == 2 { print $2 " " $7 }'))"
for run in 1 2 3; do
	port=$("$fwd" port)
	start_buffer
	start_recv
	r0=$(cpu "$rpid")
	b0=$(cpu "$bpid")
	"$fwd" run "127.0.0.1:$port" "$conns" "$events" "$window" >"$d/out"
	r1=$(cpu "$rpid")
	b1=$(cpu "$bpid")
	rhwm=$(kb VmHWM "$rpid")
	bhwm=$(kb VmHWM "$bpid")
	stop "$rpid"
	stop "$bpid"
	echo "run $run: $(cat "$d/out")"
	echo "       CPU s per 1M events: lf-recv $(per_m $((r1 - r0))),"  \
	    "lf-buffer $(per_m $((b1 - b0))); peak RSS: lf-recv" \
	    "$(mb "$rhwm") MB, lf-buffer $(mb "$bhwm") MB"
	# at once the same into lf-buffer's socket, without lf-recv: what
	# the spool takes now (a shared machine and its disk vary)
	start_buffer
	"$fwd" run "unix:$d/s" "$conns" "$events" "$window" >"$d/out"
	stop "$bpid"
	echo "       without lf-recv (straight into lf-buffer):" \
	    "$(sed 's/.*s, \([0-9]* events\/s\).*median \(.*\)$/\1, ack median \2/' "$d/out")"
done

echo "$nidle idle connections held by lf-recv --to lf-buffer"
port=$("$fwd" port)
start_buffer
start_recv
before=$(kb VmRSS "$rpid")
fds0=$(ls "/proc/$rpid/fd" | wc -l)
"$fwd" idle "127.0.0.1:$port" "$nidle" >"$d/idle" &
ipid=$!
pids="$pids $ipid"
i=0
# every connection accepted: lf-recv has an fd for each
until grep -q connected "$d/idle" 2>/dev/null &&
    [ "$(ls "/proc/$rpid/fd" | wc -l)" -ge $((fds0 + nidle)) ]; do
	if ! kill -0 "$ipid" 2>/dev/null || [ $i -ge 1200 ]; then
		echo "recv.sh: the idle connections did not all open" \
		    "($(ls "/proc/$rpid/fd" | wc -l) fds)" >&2
		cat "$d/recv.err" >&2
		exit 1
	fi
	i=$((i + 1))
	sleep 0.05
done
sleep 1		# let any per-connection work settle
rss=$(kb VmRSS "$rpid")
echo "lf-recv RSS: $(mb "$rss") MB with $nidle connections," \
    "$(mb "$before") MB before them;" \
    "$(awk -v a="$rss" -v b="$before" -v n="$nidle" \
    'BEGIN { printf "%.1f", (a - b) / n }') kB a connection (target: under 64 MB)"
kill "$ipid"
stop "$rpid"
stop "$bpid"
if [ -s "$d/recv.err" ] || [ -s "$d/buffer.err" ]; then
	echo "stderr of lf-recv and lf-buffer:"
	cat "$d/recv.err" "$d/buffer.err"
fi
