#!/bin/sh
# Replays the fuzz seed corpus and every saved crash (fuzz/regressions) through each fuzz
# harness, built with the ordinary compiler (run by make check from the build directory).
set -u
src=${srcdir:-.}
fail=0
for t in modelio checkpoint text options; do
    files=$(find "$src/fuzz/corpus/$t" "$src/fuzz/regressions/$t" -type f ! -name .keep 2>/dev/null)
    [ -n "$files" ] || { echo "FAIL $t: no seed corpus in $src/fuzz/corpus/$t"; fail=1; continue; }
    # shellcheck disable=SC2086
    if ./fuzz/replay_$t $files > replay-$t.out 2>&1; then
        echo "$t: $(tail -1 replay-$t.out)"
        rm -f replay-$t.out
    else
        echo "FAIL $t: a corpus or regression input crashed the harness:"; tail -20 replay-$t.out
        fail=1
    fi
done
exit $fail
