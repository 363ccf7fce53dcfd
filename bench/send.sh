# make bench: lf-send from a spool to a C receiver that acks each chunk.
set -eu
/usr/bin/python3 bench/send.py "$LF_BIN" "$LF_BENCH"
