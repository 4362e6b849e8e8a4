#!/usr/bin/env bash
# A single-node Slurm for the factory's tests, on a machine without systemd:
# munged, slurmctld and slurmd are started directly.
#
#   .ci/slurm.sh up     install slurm-wlm and munge if missing (apt-get), write
#                       /etc/slurm/slurm.conf, start the daemons, wait for the node
#   .ci/slurm.sh down   cancel every job, stop the daemons this script started
#
# Run as root. State, logs and pid files go to $VINE_SLURM_DIR (/var/tmp/vine-slurm).
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin

dir=${VINE_SLURM_DIR:-/var/tmp/vine-slurm}
host=$(hostname -s 2>/dev/null || uname -n)
host=${host%%.*}
conf=/etc/slurm/slurm.conf

say() { echo "slurm.sh: $*" >&2; }

logs() {
    for f in "$dir"/log/*; do
        [ -s "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }
    done
    return 0
}

alive() { # alive PIDFILE NAME: the pid, if that process runs (not a zombie)
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$2" ] || return 1
    grep -q '^State:[[:space:]]*[ZX]' /proc/"$pid"/status && return 1
    echo "$pid"
}

install_missing() {
    command -v slurmctld >/dev/null && command -v munged >/dev/null && return 0
    say "installing slurm-wlm and munge"
    # The packages' scripts must not start the daemons through init scripts.
    local policy=/usr/sbin/policy-rc.d made=0
    if [ ! -e $policy ]; then
        printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy && made=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
    [ $made = 1 ] && rm -f $policy
    return 0
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
    install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
    install -d -o munge -g munge -m 0711 /var/lib/munge
    install -d -o munge -g munge -m 0755 /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        (umask 077 && head -c 1024 /dev/urandom >/etc/munge/munge.key)
    fi
    chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    cp /run/munge/munged.pid "$dir/munged.pid"
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    say "munge does not work"; logs; exit 1
}

write_conf() {
    local cpus mem
    cpus=$(slurmd -C 2>/dev/null | sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' | head -n1)
    mem=$(slurmd -C 2>/dev/null | sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' | head -n1)
    cpus=${cpus:-$(nproc)}
    mem=${mem:-$(($(awk '/^MemTotal/ {print $2}' /proc/meminfo) / 1024))}
    mem=$((mem * 9 / 10))
    install -d /etc/slurm
    cat >"$conf" <<EOF
# single-node cluster for vine's tests (.ci/slurm.sh)
ClusterName=vinetest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$((mem / cpus))
ReturnToService=2
SlurmdParameters=config_overrides
MailProg=/bin/true
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
InactiveLimit=0
KillWait=5
MinJobAge=300
Waittime=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

up() {
    install_missing
    mkdir -p "$dir/log"
    start_munge
    if alive "$dir/slurmctld.pid" slurmctld >/dev/null && alive "$dir/slurmd.pid" slurmd >/dev/null \
        && grep -q "(.ci/slurm.sh)" "$conf" 2>/dev/null; then
        say "already up"
    else
        down_daemons
        rm -rf "$dir/state" "$dir/spool"
        mkdir -p "$dir/state" "$dir/spool"
        write_conf
        slurmctld -i || { logs; exit 1; }
        for _ in $(seq 100); do
            scontrol ping 2>/dev/null | grep -q 'is UP' && break
            sleep 0.2
        done
        slurmd -N "$host" || { logs; exit 1; }
    fi
    for _ in $(seq 300); do
        case $(sinfo -h -o %t 2>/dev/null | head -n1) in
        idle | mix | alloc) say "up: $(sinfo -h -o '%P %t %C' | head -n1)"; return 0 ;;
        drain | down | drng) scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 0.2
    done
    say "the node never became idle"; logs; exit 1
}

down_daemons() {
    local pid
    for d in slurmd slurmctld; do
        if pid=$(alive "$dir/$d.pid" $d); then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 100); do alive "$dir/$d.pid" $d >/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$dir/$d.pid"
    done
}

down() {
    if alive "$dir/slurmctld.pid" slurmctld >/dev/null; then
        jobs=$(squeue -h -o %A 2>/dev/null || true)
        # shellcheck disable=SC2086
        [ -z "$jobs" ] || scancel $jobs 2>/dev/null || true
    fi
    down_daemons
    local pid
    if pid=$(alive "$dir/munged.pid" munged); then kill "$pid" 2>/dev/null || true; fi
    rm -f "$dir/munged.pid"
    say "down"
}

[ "$(id -u)" = 0 ] || { say "run as root"; exit 1; }
case ${1:-} in
up) up ;;
down) down ;;
*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
