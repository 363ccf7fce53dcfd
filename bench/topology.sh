# make bench: the whole one-machine topology, tail -> buffer -> send ->
# recv -> buffer -> tdlog to an HTTP sink, acks on every hop
# (bench/topology.py).
set -eu
/usr/bin/python3 bench/topology.py "$LF_BIN" "$LF_BENCH"
