# make bench: lf-cat --to into lf-buffer, the acked hop end to end.
set -eu
/usr/bin/python3 bench/hop.py "$LF_BIN"
