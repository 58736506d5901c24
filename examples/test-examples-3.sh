#!/bin/sh
# Smoke runs of the caption example (run by make check from the build directory): --help,
# bad arguments rejected with exit status 2, a --smoke run that writes its CSV log (and its
# plot when gnuplot is installed) and shows its training loss falling, the same result line
# from a second run with the same seed, and a failed write (a full disk) reported with a
# non-zero exit status.
set -u
OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export OPENBLAS_NUM_THREADS
dir=$(mktemp -d "${TMPDIR:-/tmp}/ur-examples3.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
fail=0
prog=./examples/caption

if ! "$prog" --help >/dev/null; then echo "FAIL caption: --help"; fail=1; fi
for args in "--seed -1" "--no-such-option" "--steps 1.5" "--objects 4" "--beam 0" "--noise x"; do
    # shellcheck disable=SC2086
    "$prog" $args >/dev/null 2>&1
    rc=$?
    if [ "$rc" -ne 2 ]; then echo "FAIL caption: '$args' exited $rc, expected 2"; fail=1; fi
done
if ! "$prog" --smoke --log "$dir/caption.csv" --plot "$dir/caption.png" >"$dir/caption.out" 2>&1; then
    echo "FAIL caption: the --smoke run failed:"; cat "$dir/caption.out"; exit 1
fi
if [ "$(wc -l <"$dir/caption.csv")" -lt 3 ]; then echo "FAIL caption: the log is empty"; fail=1; fi
if command -v gnuplot >/dev/null 2>&1 && [ ! -s "$dir/caption.png" ]; then
    echo "FAIL caption: gnuplot is installed but no plot was written"; fail=1
fi
grep -q 'reference:' "$dir/caption.out" || { echo "FAIL caption: no image shown"; fail=1; }
grep '^result:' "$dir/caption.out"
if ! awk '/^result:/ {
            n++
            for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            if (!(v["last_loss"] + 0 < v["first_loss"] + 0)) bad = 1
            if (!(v["bleu_greedy"] >= 0 && v["bleu_beam"] >= 0)) bad = 1
          }
          END { exit (n == 1 && !bad) ? 0 : 1 }' "$dir/caption.out"; then
    echo "FAIL caption: the loss did not fall or a score is missing"; fail=1
fi
"$prog" --smoke --log "$dir/caption-2.csv" --plot none >"$dir/caption-2.out" 2>&1
a=$(grep '^result:' "$dir/caption.out" | sed 's/ seconds=[^ ]*//')
b=$(grep '^result:' "$dir/caption-2.out" | sed 's/ seconds=[^ ]*//')
if [ "$a" != "$b" ]; then echo "FAIL caption: two runs with the same seed differ"; fail=1; fi
if [ -w /dev/full ]; then
    if "$prog" --smoke --log /dev/full --plot none >/dev/null 2>"$dir/full.err"; then
        echo "FAIL caption: a log on a full disk exited 0"; fail=1
    elif ! grep -q 'cannot write' "$dir/full.err"; then
        echo "FAIL caption: no message for a log on a full disk"; fail=1
    fi
    if "$prog" --smoke --log "$dir/c3.csv" --plot none >/dev/full 2>"$dir/full2.err"; then
        echo "FAIL caption: results on a full disk exited 0"; fail=1
    fi
fi
exit $fail
