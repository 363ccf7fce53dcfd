# make bench: lf-tail from the head of a 1,000,000-line file, to a null
# sink and through --to into lf-buffer with acks (bench/tail.py).
set -eu
/usr/bin/python3 bench/tail.py "$LF_BIN"
