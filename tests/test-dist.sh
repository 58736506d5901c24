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
# char_lm data-parallel: with dropout off, 2 ranks on the global batch follow 1 process's
# training loss; a checkpoint saved on 2 ranks resumes on 1 and on 2 alike; rank 0 alone
# prints the results.
lm=./examples/char_lm
i=0
while [ $i -lt 40 ]; do
    echo "the quick brown fox jumps over the lazy dog; the dog sleeps in the sun."
    i=$((i + 1))
done > "$dir/text.txt"
args="--data $dir/text.txt --hidden 32 --embed 8 --batch 8 --bptt 16 --lr 0.01 --dropout 0 --report 0"
# same_loss WHAT A.csv B.csv: the train-loss columns agree within 1e-4 (measured: 1e-5 at most,
# the last decimal the log prints; the summation order differs in the last float bits only).
same_loss() {
    paste -d, "$2" "$3" | awk -F, -v what="$1" 'NR > 1 { d = $2 - $7; if (d < 0) d = -d; if (d > m) m = d }
        END { printf "%s: max |train loss difference| %.1g over %d steps\n", what, m, NR - 1
              exit !(m <= 1e-4 && NR > 2) }' || fail "$1: the losses differ"
}
$lm $args --steps 40 --log "$dir/lm1.csv" > "$dir/lm1.txt" 2>&1 || { cat "$dir/lm1.txt"; fail "char_lm alone"; }
timeout -k 5 120 "$mpiexec" $flags -np 2 $lm $args --steps 40 --log "$dir/lm2.csv" \
    --save "$dir/lm2.urm" --save-every 20 > "$dir/lm2.txt" 2> "$dir/lm2.err" ||
    { cat "$dir/lm2.txt" "$dir/lm2.err"; fail "char_lm on 2 ranks"; }
grep -q "data-parallel: 2 ranks share the 8 streams" "$dir/lm2.err" || { cat "$dir/lm2.err"; fail "no data-parallel banner"; }
[ "$(grep -c '^result:' "$dir/lm2.txt")" -eq 1 ] || { cat "$dir/lm2.txt"; fail "results not printed once"; }
same_loss "char_lm, 1 process vs 2 ranks" "$dir/lm1.csv" "$dir/lm2.csv"
$lm $args --steps 50 --resume "$dir/lm2.urm" --log "$dir/r1.csv" > "$dir/r1.txt" 2>&1 || { cat "$dir/r1.txt"; fail "resume on 1"; }
timeout -k 5 120 "$mpiexec" $flags -np 2 $lm $args --steps 50 --resume "$dir/lm2.urm" \
    --log "$dir/r2.csv" > "$dir/r2.txt" 2>&1 || { cat "$dir/r2.txt"; fail "resume on 2"; }
grep -q "at step 40" "$dir/r2.txt" || { cat "$dir/r2.txt"; fail "resume did not start at step 40"; }
same_loss "char_lm, a checkpoint of 2 ranks resumed on 1 vs 2" "$dir/r1.csv" "$dir/r2.csv"
echo "PASS"
