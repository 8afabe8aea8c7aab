#!/usr/bin/env bash
# Make sure a one-node SLURM cluster runs on this machine: munged, slurmctld and slurmd
# on localhost, one default partition "debug" holding every core. The SLURM tests submit
# real jobs to it. Used by .ci/run and by developers: `sudo bash scripts/slurm.sh`.
# Idempotent: a cluster that already answers is left as it is (unless its config changed).
set -euo pipefail

conf=/etc/slurm/slurm.conf
log=/var/log/slurm

fail() {
  echo "slurm: $*" >&2
  for f in "$log/slurmctld.log" "$log/slurmd.log"; do
    [ -f "$f" ] && { echo "--- last lines of $f" >&2; tail -n 15 "$f" >&2; }
  done
  exit 1
}

if [ "$(id -u)" -ne 0 ]; then
  fail "run me as root (sudo bash scripts/slurm.sh): I install packages and start daemons"
fi

need_apt=()
command -v slurmctld >/dev/null 2>&1 || need_apt+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || need_apt+=(munge)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "slurm: installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null \
    || fail "apt-get install ${need_apt[*]} failed"
fi

# -- munge: the key, then the daemon ------------------------------------------------
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
  if command -v mungekey >/dev/null 2>&1; then
    mungekey --create --keyfile=/etc/munge/munge.key --force
  else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
fi
chmod 0400 /etc/munge/munge.key
munge_up() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_up; then
  echo "slurm: starting munged"
  # --force: run as root, and take over a socket left by a munged that died
  munged --force
  for _ in $(seq 20); do munge_up && break; sleep 0.25; done
fi
munge_up || fail "munged did not start (munge -n | unmunge fails)"

# -- slurm.conf ----------------------------------------------------------------------
cpus=$(nproc)
# slurmd refuses a node that claims more memory than it has: at most 8000 MB, leave 10%
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
[ "$mem_mb" -gt 8000 ] && mem_mb=8000
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$log"
wanted=$(cat <<EOF
# written by sweeplab's scripts/slurm.sh: a one-node cluster on localhost
ClusterName=sweeplab
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$log/slurmctld.log
SlurmdLogFile=$log/slurmd.log
# a node that was down comes back by itself once slurmd answers
ReturnToService=2
# finished jobs leave squeue after 10 s; a cancelled job gets SIGTERM, SIGKILL 10 s later
MinJobAge=10
KillWait=10
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
)
changed=no
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$wanted" ]; then
  printf '%s\n' "$wanted" >"$conf"
  changed=yes
fi

# a daemon runs when the pid in its pid file is alive
running() { [ -s "/run/$1.pid" ] && kill -0 "$(cat "/run/$1.pid")" 2>/dev/null; }
if [ "$changed" = yes ]; then
  for daemon in slurmd slurmctld; do
    if running "$daemon"; then
      echo "slurm: slurm.conf changed, restarting $daemon"
      pid=$(cat "/run/$daemon.pid")
      kill "$pid" || true
      for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    fi
  done
fi

ctld_up() { scontrol ping 2>/dev/null | grep -q "is UP"; }
if ! running slurmctld; then
  echo "slurm: starting slurmctld"
  slurmctld
fi
for _ in $(seq 60); do ctld_up && break; sleep 0.25; done
ctld_up || fail "slurmctld does not answer (scontrol ping)"

if ! running slurmd; then
  echo "slurm: starting slurmd"
  # -N: this node's name in slurm.conf, whatever the machine's hostname is
  slurmd -N localhost
fi

node_state() { sinfo -h -N -n localhost -o %T 2>/dev/null | head -1; }
for _ in $(seq 60); do
  case "$(node_state)" in
    idle* | mixed* | allocated* | completing*) break ;;
    down* | drain* | fail*) scontrol update NodeName=localhost State=RESUME 2>/dev/null || true ;;
  esac
  sleep 0.5
done
case "$(node_state)" in
  idle* | mixed* | allocated* | completing*) ;;
  *) fail "node localhost is '$(node_state)', not idle: $(sinfo -h -N -o '%N %T %E' 2>&1)" ;;
esac

out=$(timeout 60 srun -N1 -n1 hostname 2>&1) || fail "srun hostname failed: $out"
echo "slurm: one-node cluster up ($cpus CPUs, ${mem_mb} MB); srun hostname -> $out"
