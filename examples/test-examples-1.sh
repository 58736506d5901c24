#!/bin/sh
# Smoke runs of the adding, classify and xor examples (run by make check from the build
# directory): each must print --help, reject a bad argument with exit status 2, finish its
# --smoke run, write its CSV log, and show its training loss falling: every "result:" line
# must have last_loss < first_loss.
set -u
dir=$(mktemp -d "${TMPDIR:-/tmp}/ur-examples.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
fail=0

# check NAME [EXTRA SMOKE ARGS]: one example's checks.
check() {
    prog="./examples/$1"
    name=$1
    shift
    if ! "$prog" --help >/dev/null; then echo "FAIL $name: --help"; fail=1; fi
    "$prog" --seed -1 >/dev/null 2>&1
    rc=$?
    if [ "$rc" -ne 2 ]; then echo "FAIL $name: --seed -1 exited $rc, expected 2"; fail=1; fi
    "$prog" --no-such-option >/dev/null 2>&1
    rc=$?
    if [ "$rc" -ne 2 ]; then echo "FAIL $name: an unknown option exited $rc, expected 2"; fail=1; fi
    if ! "$prog" --smoke --log "$dir/$name.csv" "$@" >"$dir/$name.out" 2>&1; then
        echo "FAIL $name: the --smoke run failed:"; cat "$dir/$name.out"; fail=1; return
    fi
    if [ "$(wc -l <"$dir/$name.csv")" -lt 3 ]; then echo "FAIL $name: the log is empty"; fail=1; fi
    # A full disk (issue 12): the log, and the results on stdout, must fail loudly.
    if [ -w /dev/full ]; then
        "$prog" --smoke --log /dev/full "$@" >/dev/null 2>"$dir/$name.err"
        rc=$?
        if [ "$rc" -eq 0 ] || ! grep -q "cannot write /dev/full" "$dir/$name.err"; then
            echo "FAIL $name: --log /dev/full exited $rc with: $(cat "$dir/$name.err")"; fail=1
        fi
        "$prog" --smoke --log "$dir/$name-full.csv" "$@" >/dev/full 2>"$dir/$name.err"
        rc=$?
        if [ "$rc" -eq 0 ] || ! grep -q "cannot write the standard output" "$dir/$name.err"; then
            echo "FAIL $name: stdout on /dev/full exited $rc with: $(cat "$dir/$name.err")"; fail=1
        fi
    fi
    grep '^result:' "$dir/$name.out"
    if ! awk '/^result:/ {
                n++
                for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                if (!(v["last_loss"] + 0 < v["first_loss"] + 0)) bad = 1
              }
              END { exit (n > 0 && !bad) ? 0 : 1 }' "$dir/$name.out"; then
        echo "FAIL $name: the loss did not fall"; fail=1
    fi
}

check adding --grad-csv "$dir/adding_grad.csv"
if [ -w /dev/full ]; then
    ./examples/adding --smoke --log "$dir/a.csv" --grad-csv /dev/full >/dev/null 2>"$dir/a.err"
    rc=$?
    if [ "$rc" -eq 0 ] || ! grep -q "cannot write /dev/full" "$dir/a.err"; then
        echo "FAIL adding: --grad-csv /dev/full exited $rc"; fail=1
    fi
fi
check classify --cells lstm
# A failed evaluation is an error, not "test_acc=nan" with status 0 (issue 12): the held-out set
# is evaluated as one batch, and 4096 sequences do not fit a tape capped at 8 MiB, while a
# training step of 32 does (about 3.4 MiB).
./examples/classify --cells lstm --sequences 64 --test 4096 --min-len 42 --max-len 42 \
    --tape-limit 8 --log "$dir/c.csv" >"$dir/c.out" 2>&1
rc=$?
if [ "$rc" -ne 1 ] || ! grep -q "classify: evaluation failed: tape: memory limit of 8388608 bytes" \
        "$dir/c.out" || grep -qi "nan" "$dir/c.out" || grep -q "^result:" "$dir/c.out"; then
    echo "FAIL classify: a failed evaluation exited $rc with:"; cat "$dir/c.out"; fail=1
fi
# The same run without the cap evaluates (so the failure above is the evaluation's).
./examples/classify --cells lstm --sequences 64 --test 4096 --min-len 42 --max-len 42 \
    --log "$dir/c.csv" >"$dir/c.out" 2>&1
if [ $? -ne 0 ] || ! grep -q "^result: cell=lstm .*test_acc=[01]\.[0-9]" "$dir/c.out"; then
    echo "FAIL classify: the uncapped run did not evaluate:"; cat "$dir/c.out"; fail=1
fi
check xor
exit $fail
