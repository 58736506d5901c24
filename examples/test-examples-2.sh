#!/bin/sh
# Smoke runs of the jordan, bitag and seq2seq examples (run by make check from the build
# directory): each must print --help, reject bad arguments with exit status 2, finish its
# --smoke run, write its CSV log, and show its training loss falling (the "result:" line has
# last_loss < first_loss). A second --smoke run with the same seed must print the same
# result line (reproducibility). seq2seq is checked twice, without and with --attention, both
# with --beam 3, and a beam of 1 must score as greedy decoding.
set -u
# The smoke models are tiny: OpenBLAS threads would only wait on each other.
OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export OPENBLAS_NUM_THREADS
dir=$(mktemp -d "${TMPDIR:-/tmp}/ur-examples2.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
fail=0

# check NAME BAD_ARG [EXTRA SMOKE ARGS]: one example's checks; BAD_ARG is an argument of the
# right form but an invalid value that the program must reject.
check() {
    prog="./examples/$1"
    name=$1
    bad=$2
    shift 2
    if ! "$prog" --help >/dev/null; then echo "FAIL $name: --help"; fail=1; fi
    for args in "--seed -1" "--no-such-option" "--steps 1.5" "$bad"; do
        # shellcheck disable=SC2086
        "$prog" $args >/dev/null 2>&1
        rc=$?
        if [ "$rc" -ne 2 ]; then echo "FAIL $name: '$args' exited $rc, expected 2"; fail=1; fi
    done
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
    "$prog" --smoke --log "$dir/$name-2.csv" "$@" >"$dir/$name-2.out" 2>&1
    # seconds= is wall time and may differ between runs.
    a=$(grep '^result:' "$dir/$name.out" | sed 's/ seconds=[^ ]*//')
    b=$(grep '^result:' "$dir/$name-2.out" | sed 's/ seconds=[^ ]*//')
    if [ "$a" != "$b" ]; then echo "FAIL $name: two runs with the same seed differ"; fail=1; fi
}

check jordan "--a2 0.9" --trace "$dir/jordan-trace.csv"
if [ -w /dev/full ]; then
    ./examples/jordan --smoke --log "$dir/j.csv" --trace /dev/full >/dev/null 2>"$dir/j.err"
    rc=$?
    if [ "$rc" -eq 0 ] || ! grep -q "cannot write /dev/full" "$dir/j.err"; then
        echo "FAIL jordan: --trace /dev/full exited $rc"; fail=1
    fi
fi
check bitag "--delay 24"
check seq2seq "--min-len 9 --max-len 3" --beam 3
check seq2seq "--test-len 10" --attention --beam 3
# seq2seq --beam K: K a whole number in 1-64; width 1 is greedy decoding, so its exact match
# and per-character accuracy equal greedy's, with and without attention.
for args in "--beam 0" "--beam 65" "--beam 2x" "--beam 1.5" "--beam -3" "--beam"; do
    # shellcheck disable=SC2086
    ./examples/seq2seq --smoke $args >/dev/null 2>&1
    rc=$?
    if [ "$rc" -ne 2 ]; then echo "FAIL seq2seq: '$args' exited $rc, expected 2"; fail=1; fi
done
for a in "" --attention; do
    # shellcheck disable=SC2086
    if ! ./examples/seq2seq --smoke --beam 1 $a --log "$dir/s2s-b1.csv" >"$dir/s2s-b1.out" 2>&1; then
        echo "FAIL seq2seq: --beam 1 $a failed:"; cat "$dir/s2s-b1.out"; fail=1; continue
    fi
    if ! awk '/^result:/ {
                n++
                for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                if (v["beam"] != "1") bad = 1
                split("exact chars exact_beyond chars_beyond", k, " ")
                for (j = 1; j <= 4; j++)
                    if (v[k[j]] == "" || v[k[j]] != v["beam_" k[j]]) bad = 1
              }
              END { exit (n == 1 && !bad) ? 0 : 1 }' "$dir/s2s-b1.out"; then
        echo "FAIL seq2seq: --beam 1 $a differs from greedy:"; grep '^result:' "$dir/s2s-b1.out"
        fail=1
    fi
done
exit $fail
