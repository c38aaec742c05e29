#!/usr/bin/env bash
# Start a single-node SLURM cluster on localhost (Debian 12, root, no systemd), for the
# SLURM profile test (tests/test_slurm.py). Idempotent; takes ~15 s of apt the first time.
# No accounting daemon: tests/profiles/local-slurm asks squeue for job status instead of sacct.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "slurm-up: needs root" >&2; exit 3; }
STATE=${SLURM_STATE_DIR:-/tmp/soundsim-slurm}
export DEBIAN_FRONTEND=noninteractive
PKGS="slurmctld slurmd slurm-client munge"
if ! dpkg -s $PKGS >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
fi
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
mkdir -p "$STATE/ctld" "$STATE/spool" "$STATE/log"

if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --force --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 755 /run/munge
running /run/munge/munged.pid || runuser -u munge -- /usr/sbin/munged
munge -n | unmunge >/dev/null

HOST=$(hostname -s)
NODE_LINE=$(slurmd -C | head -1)
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=soundsim
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=600
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
$NODE_LINE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

running "$STATE/slurmctld.pid" || slurmctld
running "$STATE/slurmd.pid" || slurmd
for _ in $(seq 60); do
  [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break
  sleep 1
done
sinfo
