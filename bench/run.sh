#!/usr/bin/env bash
# Benchmarks AppKernel against native (and runsc and proot when installed): medians of several
# runs and ratios against native. Timings live here, never in tests. AppKernel runs on ptrace, and
# on KVM too when /dev/kvm is usable (column appkernel-kvm), with the bare KVM exit as its floor.
#   bench/run.sh [runs]        (default 5 runs per figure)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
out=artifacts/bench
mkdir -p "$out"

echo "building the runner (Release, ReadyToRun) and the benchmark programs..." >&2
dotnet publish samples/Runner -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true -o "$out/appkernel" >/dev/null
for p in bench/programs/*.c; do gcc -O2 -static -pthread -o "$out/$(basename "${p%.c}")" "$p"; done
data="$out/data-64m.bin"
[ -f "$data" ] || head -c $((64 << 20)) /dev/urandom > "$data"

appkernel="$out/appkernel/appkernel"
here=$(pwd)
declare -A runners=([native]="" [appkernel]="$appkernel do --")
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  runners[appkernel-kvm]="$appkernel do --platform kvm --"
  gcc -O2 -o "$out/kvm-exit-floor" bench/kvm/exit-floor.c
  gcc -O2 -o "$out/kvm-syscall-paths" bench/kvm/syscall-paths.c
fi
command -v runsc >/dev/null && runners[runsc]="runsc --platform=ptrace --network=none do"
command -v proot >/dev/null && runners[proot]="proot -r /"
order=(native appkernel appkernel-kvm runsc proot)

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) {print "n/a"} else if (NR % 2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }

# measure NAME UNIT COMMAND... : median of the number each run prints
measure() {
  local runner=$1; shift
  for _ in $(seq "$runs"); do ${runners[$runner]} "$@" 2>/dev/null | tail -n 1 || true; done | median
}

# wall-clock milliseconds of a command, median
wall() {
  local runner=$1; shift
  for _ in $(seq "$runs"); do
    local start end
    start=$(date +%s%N)
    ${runners[$runner]} "$@" >/dev/null 2>&1 || true
    end=$(date +%s%N)
    echo $(( (end - start) / 1000000 ))
  done | median
}

printf "%-28s" "figure (median of $runs)"
for r in "${order[@]}"; do [ -n "${runners[$r]+x}" ] && printf "%18s" "$r"; done
echo
row() {
  local name=$1 kind=$2; shift 2
  local base=""
  printf "%-28s" "$name"
  for r in "${order[@]}"; do
    [ -n "${runners[$r]+x}" ] || continue
    local v
    if [ "$kind" = wall ]; then v=$(wall "$r" "$@"); else v=$(measure "$r" "$@"); fi
    [ "$r" = native ] && base=$v
    if [ "$r" != native ] && [ "$v" != n/a ] && [ -n "$base" ]; then
      printf "%18s" "$v ($(awk -v a="$v" -v b="$base" 'BEGIN {printf "%.1fx", a / b}'))"
    else
      printf "%18s" "$v"
    fi
  done
  echo
}

row "getppid round trip (ns)" value "$here/$out/getppid" 200000
row "open+close (ns)" value "$here/$out/openclose" 20000 /etc/passwd
row "1 MiB reads (MiB/s)" value "$here/$out/readmib" "$here/$data" 4
row "eventfd+epoll_wait (ns)" value "$here/$out/epollwake" eventfd 20000
row "timerfd wake lateness (us)" value "$here/$out/epollwake" timer 300
row "thread epoll wake (us)" value "$here/$out/epollwake" thread 2000
row "startup of /bin/true (ms)" wall /bin/true
row "fork+exit+wait (us)" value "$here/$out/forkwait" 200
row "fork+exec+wait (us)" value "$here/$out/forkexec" 50
row "pthread create+join (us)" value "$here/$out/threadjoin" 200
row "pipe throughput (MiB/s)" value "$here/$out/pipethroughput" 256
row "futex ping-pong (us)" value "$here/$out/futexpingpong" 2000
row "TCP loopback ping-pong (us)" value "$here/$out/tcploopback" pingpong 2000
row "TCP loopback stream (MiB/s)" value "$here/$out/tcploopback" stream 256
# Network mode host: the same ping-pong over host sockets (the sandbox reaches its own listener);
# the port is one the runner allows it to listen on.
port=$((20000 + RANDOM % 20000))
printf "%-28s%18s" "TCP ping-pong, mode host (us)" "$(measure native "$here/$out/tcploopback" pingpong 2000 "$port")"
printf "%18s\n" "$(for _ in $(seq "$runs"); do "$appkernel" do --network host --allow-bind "$port" -- "$here/$out/tcploopback" pingpong 2000 "$port" 2>/dev/null | tail -n 1 || true; done | median)"
row "sh loop of 200 /bin/true (ms)" wall /bin/sh -c 'for i in $(seq 200); do /bin/true; done' 
if [ -x "$out/kvm-exit-floor" ]; then
  printf "%-28s%18s\n" "bare KVM exit (ns)" "$(for _ in $(seq "$runs"); do "$out/kvm-exit-floor" 20000; done | median)"
fi
if [ -x "$out/kvm-syscall-paths" ]; then
  # bench/kvm/syscall-paths.c: the cheapest exit from ring 3, and a guest syscall by each of the two paths
  for m in "out:ring-3 out exit" "fault:syscall, ring-0 stop" "user:syscall, user-mode stop"; do
    printf "%-28s%18s\n" "KVM ${m#*:} (ns)" "$(for _ in $(seq "$runs"); do "$out/kvm-syscall-paths" "${m%%:*}" 5000; done | median)"
  done
fi
