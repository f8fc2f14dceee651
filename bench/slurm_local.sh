#!/bin/bash
# A one-node Slurm on this machine, to run `gecko data run CONFIG data.engine=slurm` against a real scheduler
# (docs/dedup.md, "Slurm"). Debian 12 as root, no systemd needed:
#   apt-get install -y slurm-wlm munge     # Slurm 22.05 and munge from the Debian archive
#   bench/slurm_local.sh start             # writes /etc/slurm/slurm.conf, starts munged, slurmctld, slurmd
#   sinfo                                  # partition `debug`, one node, idle
#   gecko data run configs/demo.yaml data.engine=slurm data.slurm.partition=debug
#   bench/slurm_local.sh stop              # stops the three daemons this script started (pid files)
# One node with CPUS CPUs (default 2) and no accounting database: datatrove's SlurmPipelineExecutor needs
# sbatch, squeue-visible job arrays, --dependency and srun, all of which this gives.
set -euo pipefail
CPUS=${CPUS:-2}
MEM_MB=${MEM_MB:-8000}
NODE=$(hostname -s)
STATE=/var/lib/gecko-slurm
RUNDIR=/run/gecko-slurm

start() {
    mkdir -p "$STATE/ctld" "$STATE/d" "$RUNDIR" /run/munge /var/log/slurm
    chown slurm:slurm "$STATE/ctld" "$RUNDIR" /var/log/slurm
    chown munge:munge /run/munge
    cat >/etc/slurm/slurm.conf <<EOF
ClusterName=gecko-local
SlurmctldHost=$NODE
SlurmUser=slurm
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$RUNDIR/slurmctld.pid
SlurmdPidFile=$RUNDIR/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$NODE CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    [ -f /etc/munge/munge.key ] || mungekey --create
    su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=/run/munge/munged.pid"
    slurmctld
    slurmd
    for _ in $(seq 30); do
        if sinfo -h -o %T 2>/dev/null | grep -q idle; then sinfo; return 0; fi
        sleep 1
    done
    echo "slurm_local: the node did not become idle; see /var/log/slurm/" >&2
    exit 1
}

stop() {
    for pidfile in "$RUNDIR/slurmd.pid" "$RUNDIR/slurmctld.pid" /run/munge/munged.pid; do
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    echo "slurm_local: stopped"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
