#!/usr/bin/env bash
# Stop the daemons .ci/slurm-up.sh started.
STATE=${SLURM_STATE_DIR:-/tmp/soundsim-slurm}
for p in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" /run/munge/munged.pid; do
  [ -s "$p" ] && kill "$(cat "$p")" 2>/dev/null || true
done
