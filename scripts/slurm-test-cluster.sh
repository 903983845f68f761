#!/usr/bin/env bash
# A real one-node Slurm cluster for the tests, all of it inside one folder:
#
#   scripts/slurm-test-cluster.sh start DIR   # munged, slurmctld, slurmd; waits for an idle node
#   export SLURM_CONF=DIR/slurm.conf          # then sinfo, sbatch, squeue, scancel talk to it
#   scripts/slurm-test-cluster.sh stop DIR    # cancels its jobs, stops the daemons it started
#
# Nothing outside DIR is read or written: its own munge key, socket and seed,
# its own slurm.conf with free ports, state, spool, pid and log files. So it can
# run beside a system munge or Slurm, and beside another test cluster. Needs root
# (the daemons run as root, as the jobs' owner may be anyone) and Debian's
# slurm-wlm and munge (scripts/install-deps.sh). Where the cluster does not
# come up it prints why and the daemons' logs, and exits 1.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
(($# == 2)) || usage
action=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)
wait_s=${NST_SLURM_START_TIMEOUT_S:-60}

log_tails() {
  local log
  for log in "$dir"/log/munged.log "$dir"/log/slurmctld.log "$dir"/log/slurmd.log \
             "$dir"/log/munged.out "$dir"/log/slurmctld.out "$dir"/log/slurmd.out; do
    [ -s "$log" ] || continue
    echo "---- last lines of $log" >&2
    tail -n 25 "$log" >&2
  done
}

fail() {
  echo "slurm-test-cluster: $*" >&2
  log_tails
  exit 1
}

# A TCP port nothing listens on (the kernel picks it; the daemons bind it a
# moment later, so a clash needs another program to take it in between).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Stops one daemon by the process id this script recorded: SIGTERM, then
# SIGKILL after 10 s.
stop_pid() {
  local name=$1 file="$dir/run/$1.pid" pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
      echo "slurm-test-cluster: $name ($pid) did not stop on SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$file"
}

start() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null ||
    fail "slurmctld or munged is not installed (apt-get install slurm-wlm munge)"
  [ "$(id -u)" -eq 0 ] || fail "needs root: the daemons run as root (SlurmUser=root)"
  [ ! -s "$dir/run/slurmctld.pid" ] || ! alive "$(cat "$dir/run/slurmctld.pid")" ||
    fail "a cluster already runs in $dir (stop it first)"
  # munged refuses a socket or key in a folder others may write to, and a socket
  # in one that others cannot enter.
  chmod 0755 "$dir"
  mkdir -p "$dir"/{munge,run,log,state,spool}
  chmod 0755 "$dir/munge"

  # ---- munge: a fresh key, and munged on its own socket -------------------------------
  local key="$dir/munge/munge.key" socket="$dir/munge/munge.socket"
  ((${#socket} < 108)) || fail "the munge socket path $socket is too long for a Unix socket (108 bytes)"
  if [ ! -s "$key" ]; then
    dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
  fi
  chown root:root "$key"
  chmod 0400 "$key"
  setsid munged --foreground --key-file="$key" --socket="$socket" \
    --pid-file="$dir/run/munged.daemon.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed" </dev/null >"$dir/log/munged.out" 2>&1 &
  echo $! >"$dir/run/munged.pid"
  for _ in $(seq 50); do
    [ -S "$socket" ] && break
    alive "$(cat "$dir/run/munged.pid")" || fail "munged exited while it started"
    sleep 0.1
  done
  [ -S "$socket" ] || fail "munged did not make its socket $socket in 5 s"
  munge --socket="$socket" -n | unmunge --socket="$socket" >/dev/null ||
    fail "munged runs but a credential does not round-trip"

  # ---- slurm.conf ---------------------------------------------------------------------
  local host cpus mem_mb ctld_port slurmd_port
  host=$(hostname -s)
  cpus=$(nproc)
  # slurmd drains a node that has less memory than the configuration says: keep a
  # margin below what the kernel reports.
  mem_mb=$(awk '/^MemTotal:/ { m = int($2 / 1024) - 1024; print (m < 256 ? 256 : m) }' /proc/meminfo)
  ctld_port=$(free_port)
  slurmd_port=$(free_port)
  while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(free_port); done
  : >"$dir/plugstack.conf"
  cat >"$dir/slurm.conf" <<EOF
# A one-node test cluster (scripts/slurm-test-cluster.sh); everything lives in $dir.
ClusterName=nsttest
# slurmctld runs only where its host name is SlurmctldHost's: the real short
# host name, reached at the loopback address.
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.daemon.pid
SlurmdPidFile=$dir/run/slurmd.daemon.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups (a container may not delegate them): processes are tracked through
# /proc and tasks are not confined.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
# The system's plugstack.conf would load whatever SPANK plugins are installed.
PlugStackConfig=$dir/plugstack.conf
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerType=sched/backfill
# Quick turnaround for short test jobs.
SchedulerParameters=sched_interval=1
MinJobAge=10
KillWait=5
InactiveLimit=0
SlurmdTimeout=60
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$dir/slurm.conf"

  # ---- the daemons, in the foreground of their own sessions ----------------------------
  setsid slurmctld -D -i -f "$dir/slurm.conf" </dev/null >"$dir/log/slurmctld.out" 2>&1 &
  echo $! >"$dir/run/slurmctld.pid"
  setsid slurmd -D -N localhost -f "$dir/slurm.conf" </dev/null >"$dir/log/slurmd.out" 2>&1 &
  echo $! >"$dir/run/slurmd.pid"

  local state="" deadline=$((SECONDS + wait_s)) daemon
  while ((SECONDS < deadline)); do
    for daemon in munged slurmctld slurmd; do
      alive "$(cat "$dir/run/$daemon.pid")" || fail "$daemon exited while the cluster started"
    done
    state=$(sinfo -h -n localhost -o %t 2>/dev/null || true)
    [ "$state" = "idle" ] && break
    sleep 0.5
  done
  [ "$state" = "idle" ] ||
    fail "the node is not idle after ${wait_s} s (sinfo says '${state:-nothing}')"
  echo "slurm-test-cluster: up in $dir (SLURM_CONF=$dir/slurm.conf, ports $ctld_port/$slurmd_port)"
}

stop() {
  if [ -s "$dir/slurm.conf" ] && [ -s "$dir/run/slurmctld.pid" ] &&
     alive "$(cat "$dir/run/slurmctld.pid")"; then
    # The jobs' slurmstepd processes outlive slurmd: cancel them while the
    # controller still runs, and give them a moment to end.
    export SLURM_CONF="$dir/slurm.conf"
    scancel --full --quiet --partition=debug 2>/dev/null || true
    for _ in $(seq 50); do
      [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  stop_pid slurmd
  stop_pid slurmctld
  stop_pid munged
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
