#!/usr/bin/env bash
# Run a long-lived command (`dagster dev` for `make run`) and stop it cleanly on Ctrl-C or SIGTERM.
#
# `dagster dev` shuts its webserver, daemon and code servers down on SIGINT. Signalled together
# with them (a terminal's Ctrl-C, or `kill` of the process group), a code server that is still
# loading dies half-way and its proxy then waits out a 45 s heartbeat timeout: `make run` used to
# linger about 75 s and need SIGKILL. Here the command runs as its own job (process group), gets
# one SIGINT, has GRACE_SECONDS to finish, and whatever of it is left is then killed.
# SIGINT is reset to its default first: a process started in the background by a script (as
# `setsid make run &` is) inherits SIGINT ignored, and `dagster dev`, which maps SIGTERM to its
# SIGINT handler, then ignored both until SIGKILL.
#   usage: scripts/serve.sh COMMAND [ARGS...]
set -u
GRACE_SECONDS=${GRACE_SECONDS:-15}
set -m
python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' "$@" &
child=$!

alive() { kill -0 -- "-$child" 2>/dev/null; }

stop() {
  # further INT/TERM are ignored, not reset to their default: with `trap -`, a second signal still
  # pending when the handler ran (bash 5.2: "run_pending_traps: bad value in trap_list[15]") was
  # re-sent with the default action, and the script died before stopping the command (fresh-ci)
  trap '' INT TERM
  echo "stopping $1 (pid $child) ..." >&2
  kill -INT "$child" 2>/dev/null
  for _ in $(seq $((GRACE_SECONDS * 4))); do
    alive || { echo "stopped" >&2; exit 0; }
    sleep 0.25
  done
  echo "some of its processes did not stop within ${GRACE_SECONDS} s; killing them" >&2
  kill -KILL -- "-$child" 2>/dev/null
  exit 0
}
trap 'stop "$1"' INT TERM
wait "$child"
rc=$?
alive && kill -KILL -- "-$child" 2>/dev/null  # it exited by itself: leave nothing behind
exit $rc
