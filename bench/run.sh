#!/usr/bin/env bash
# Benchmarks AppKernel against native (and runsc and proot when installed): medians of several
# runs and ratios against native. Timings live here, never in tests. AppKernel runs on ptrace, and
# on KVM too when /dev/kvm is usable (column appkernel-kvm), with the bare KVM exit as its floor.
#   bench/run.sh [runs]        (default 5 runs per figure)
#   BENCH_ONLY=REGEX bench/run.sh [runs]   only the figures whose name matches REGEX
#   APPKERNEL_BASELINE=DIR/appkernel bench/run.sh   adds a column for another build (before/after)
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
[ -n "${APPKERNEL_BASELINE:-}" ] && runners[baseline]="$APPKERNEL_BASELINE do --"
order=(native baseline appkernel appkernel-kvm runsc proot)

# The same runners, but with a host directory the program can write through the runtime's file
# proxy (AppKernel: a read-write --bind served by the Gofer; runsc: no overlay, so its gofer
# writes to the host). Native and proot write to the host directory directly.
rwdir="$here/$out/rw"
mkdir -p "$rwdir"
declare -A rwrunners=([native]="")
rwrunners[appkernel]="$appkernel do --bind $rwdir --"
[ -n "${runners[baseline]+x}" ] && rwrunners[baseline]="$APPKERNEL_BASELINE do --bind $rwdir --"
[ -n "${runners[appkernel-kvm]+x}" ] && rwrunners[appkernel-kvm]="$appkernel do --platform kvm --bind $rwdir --"
[ -n "${runners[runsc]+x}" ] && rwrunners[runsc]="runsc --platform=ptrace --network=none do -force-overlay=false"
[ -n "${runners[proot]+x}" ] && rwrunners[proot]="proot -r /"
declare -n active=runners

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) {print "n/a"} else if (NR % 2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }

# measure NAME UNIT COMMAND... : median of the number each run prints
measure() {
  local runner=$1; shift
  for _ in $(seq "$runs"); do ${active[$runner]} "$@" 2>/dev/null | tail -n 1 || true; done | median
}

# wall-clock milliseconds of a command, median
wall() {
  local runner=$1; shift
  for _ in $(seq "$runs"); do
    local start end
    start=$(date +%s%N)
    ${active[$runner]} "$@" >/dev/null 2>&1 || true
    end=$(date +%s%N)
    echo $(( (end - start) / 1000000 ))
  done | median
}

printf "%-34s" "figure (median of $runs)"
for r in "${order[@]}"; do [ -n "${runners[$r]+x}" ] && printf "%18s" "$r"; done
echo
row() {
  local name=$1 kind=$2; shift 2
  local base=""
  [[ -z "${BENCH_ONLY:-}" || "$name" =~ $BENCH_ONLY ]] || return 0
  printf "%-34s" "$name"
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
row "open+close, gofer file (ns)" value "$here/$out/openclose" 20000 /etc/passwd
row "1 MiB reads, gofer (MiB/s)" value "$here/$out/readmib" "$here/$data" 4
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
# Network mode host: the same ping-pong over host sockets (the sandbox reaches its own listener on
# a port the runner allows it to bind); runsc with --network=host, proot and native use the host's directly.
port=$((20000 + RANDOM % 20000))
declare -A netrunners=([native]="")
[ -n "${runners[appkernel]+x}" ] && netrunners[appkernel]="$appkernel do --network host --allow-bind $port --"
[ -n "${runners[baseline]+x}" ] && netrunners[baseline]="$APPKERNEL_BASELINE do --network host --allow-bind $port --"
[ -n "${runners[appkernel-kvm]+x}" ] && netrunners[appkernel-kvm]="$appkernel do --platform kvm --network host --allow-bind $port --"
[ -n "${runners[runsc]+x}" ] && netrunners[runsc]="runsc --platform=ptrace --network=host do"
[ -n "${runners[proot]+x}" ] && netrunners[proot]="proot -r /"
declare -n active=netrunners
row "TCP ping-pong, mode host (us)" value "$here/$out/tcploopback" pingpong 2000 "$port"
declare -n active=runners
row "sh loop of 200 /bin/true (ms)" wall /bin/sh -c 'for i in $(seq 200); do /bin/true; done'
# Filesystem figures: the sandbox root (and /usr, /etc) is the host's, served by the Gofer
# (AppKernel: read-only lower of the root overlay; runsc: its gofer under its overlay).
row "find /usr/lib -type f|wc -l (ms)" wall /bin/sh -c 'find /usr/lib -type f | wc -l'
row "tar -cf - /usr/include|wc -c (ms)" wall /bin/sh -c 'tar -cf - /usr/include | wc -c'
row "stat, gofer file (ns)" value "$here/$out/statloop" 20000 /etc/passwd
row "stat ENOENT, gofer dir (ns)" value "$here/$out/statloop" 20000 /etc/no-such-file missing
row "seq read, tmpfs (MiB/s)" value "$here/$out/seqio" read /dev/shm/appkernel-bench.bin 64
row "seq write, tmpfs (MiB/s)" value "$here/$out/seqio" write /dev/shm/appkernel-bench.bin 256
declare -n active=rwrunners
row "seq read, gofer rw (MiB/s)" value "$here/$out/seqio" read "$rwdir/seq.bin" 64
row "seq write, gofer rw (MiB/s)" value "$here/$out/seqio" write "$rwdir/seq.bin" 256
declare -n active=runners
if [ -x "$out/kvm-exit-floor" ] && [[ -z "${BENCH_ONLY:-}" || "bare KVM exit" =~ $BENCH_ONLY ]]; then
  printf "%-34s%18s\n" "bare KVM exit (ns)" "$(for _ in $(seq "$runs"); do "$out/kvm-exit-floor" 20000; done | median)"
fi
if [ -x "$out/kvm-syscall-paths" ] && [[ -z "${BENCH_ONLY:-}" || "KVM syscall" =~ $BENCH_ONLY ]]; then
  # bench/kvm/syscall-paths.c: the cheapest exit from ring 3, and a guest syscall by each of the two paths
  for m in "out:ring-3 out exit" "fault:syscall, ring-0 stop" "user:syscall, user-mode stop"; do
    printf "%-34s%18s\n" "KVM ${m#*:} (ns)" "$(for _ in $(seq "$runs"); do "$out/kvm-syscall-paths" "${m%%:*}" 5000; done | median)"
  done
fi
