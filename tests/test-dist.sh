#!/bin/sh
# Data-parallel training over MPI: tests/test_dist under mpirun (see tests/test_dist.c).
#   - unit: sharding, broadcast, 2 ranks against 1 process on the whole batch, the divergence
#     check, refused arguments, checkpoints written and read by rank 0;
#   - checkpoint on 2 ranks, resume on 1, and the reverse: the same next step;
#   - a rank with a tape error, and a rank killed outright: every rank stops, none hangs.
# SKIP (exit 77) when configure ran without --with-mpi.
set -u
if [ "${UR_WITH_MPI:-no}" != yes ]; then
    echo "SKIP: MPI support was not built (./configure --with-mpi, with libopenmpi-dev and openmpi-bin)"
    exit 77
fi
prog=./tests/test_dist
mpiexec=${MPIEXEC:-mpirun}
dir=$(mktemp -d "${TMPDIR:-/tmp}/dist-test.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export OPENBLAS_NUM_THREADS=1
# Open MPI refuses to run as root unless told; CI runs as root. --oversubscribe: 2 ranks even
# on a 1-core machine (and beside the other tests of make check -j).
flags="--oversubscribe"
[ "$(id -u)" -eq 0 ] && flags="$flags --allow-run-as-root"
# run NP TIMEOUT args...: the job, killed if it outlives TIMEOUT seconds (a hang fails).
run() {
    np=$1 limit=$2; shift 2
    timeout -k 5 "$limit" "$mpiexec" $flags -np "$np" "$prog" "$@"
}
# stopped WHAT LOG START RC LIMIT: the job failed (as it should), and before LIMIT seconds.
stopped() {
    took=$(( $(date +%s) - $3 ))
    [ "$4" -ne 0 ] || { cat "$2"; fail "$1: exit status 0"; }
    [ "$took" -lt "$5" ] || { cat "$2"; fail "$1: the job hung (killed after ${took}s)"; }
}

run 2 120 unit "$dir" > "$dir/unit.txt" 2>&1 || { cat "$dir/unit.txt"; fail "unit (exit $?)"; }
cat "$dir/unit.txt"

for np in "2 1" "1 2"; do
    set -- $np
    rm -f "$dir/ckpt.urm" "$dir/next.urm"
    run "$1" 60 save "$dir" 4 > "$dir/save.txt" 2>&1 || { cat "$dir/save.txt"; fail "save on $1"; }
    run "$2" 60 resume "$dir" 4 > "$dir/resume.txt" 2>&1 ||
        { cat "$dir/save.txt" "$dir/resume.txt"; fail "checkpoint on $1 rank(s), resume on $2"; }
    cat "$dir/save.txt" "$dir/resume.txt" | grep -v PASS
done

# A tape error on rank 1: its message, then MPI_Abort ends rank 0, which waits in the all-reduce.
start=$(date +%s)
run 2 60 fail > "$dir/fail.txt" 2>&1
rc=$?
stopped "a failing rank" "$dir/fail.txt" "$start" $rc 60
grep -q "rank 1 of 2: step 1: matmul" "$dir/fail.txt" || { cat "$dir/fail.txt"; fail "no tape error from rank 1"; }
grep -q "stopping every rank" "$dir/fail.txt" || { cat "$dir/fail.txt"; fail "no stop message"; }
echo "a tape error on rank 1 stopped the job in ${took}s (exit $rc): $(grep -m1 'rank 1 of 2: step 1' "$dir/fail.txt")"

# Rank 1 killed outright: mpirun stops rank 0.
start=$(date +%s)
run 2 60 die > "$dir/die.txt" 2>&1
rc=$?
stopped "a killed rank" "$dir/die.txt" "$start" $rc 60
echo "rank 1 killed: the job stopped in ${took}s (exit $rc): $(grep -m1 'exited on signal' "$dir/die.txt")"
echo "PASS"
