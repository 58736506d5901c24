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
check classify --cells lstm
check xor
exit $fail
