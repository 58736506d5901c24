#!/bin/sh
# char_lm in a short mode: training on a small text makes the loss fall, the model file
# round-trips through `char_lm sample`, and bad input gives a message and a non-zero exit.
set -u
prog=./examples/char_lm
dir=$(mktemp -d "${TMPDIR:-/tmp}/char-lm-test.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export OPENBLAS_NUM_THREADS=1

# A small, repetitive text: a network learns it within a few dozen steps.
i=0
while [ $i -lt 40 ]; do
    echo "the quick brown fox jumps over the lazy dog; the dog sleeps in the sun."
    i=$((i + 1))
done > "$dir/text.txt"

$prog --data "$dir/text.txt" --steps 150 --hidden 64 --embed 16 --batch 8 --bptt 16 --lr 0.01 \
    --report 0 --log "$dir/log.csv" --save "$dir/m.urm" --save-every 100 > "$dir/out.txt" 2>&1 \
    || { cat "$dir/out.txt"; fail "training exited non-zero"; }
grep -q "5-gram" "$dir/out.txt" || { cat "$dir/out.txt"; fail "no n-gram table"; }
first=$(sed -n 2p "$dir/log.csv" | cut -d, -f2)
last=$(tail -n 1 "$dir/log.csv" | cut -d, -f2)
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.5 * a) }' \
    || fail "train loss did not fall enough: $first -> $last"
echo "loss $first -> $last"

# Resume for a few more steps; the step count continues from the checkpoint.
$prog --data "$dir/text.txt" --steps 160 --batch 8 --bptt 16 --report 0 --resume "$dir/m.urm" \
    --save "$dir/m2.urm" > "$dir/resume.txt" 2>&1 || { cat "$dir/resume.txt"; fail "resume failed"; }
grep -q "at step 150" "$dir/resume.txt" || { cat "$dir/resume.txt"; fail "resume did not start at step 150"; }
grep -q "Adam's moments restored" "$dir/resume.txt" || { cat "$dir/resume.txt"; fail "resume did not restore Adam"; }

# Save -> sample round trip: the prime comes back followed by --length characters.
out=$($prog sample --model "$dir/m2.urm" --prime "the " --length 40 --seed 3) || fail "sample failed"
[ "${out#the }" != "$out" ] || fail "sample does not start with the prime: $out"
[ ${#out} -eq 44 ] || fail "sample has ${#out} characters, expected 44: $out"
again=$($prog sample --model "$dir/m2.urm" --prime "the " --length 40 --seed 3)
[ "$out" = "$again" ] || fail "same seed, different samples"
echo "sample: $out"

# Errors: a message and a non-zero exit.
expect_error() {  # expect_error WHAT PATTERN command...
    what=$1 pattern=$2; shift 2
    if "$@" > "$dir/err.txt" 2>&1; then fail "$what: exit status 0"; fi
    grep -q "$pattern" "$dir/err.txt" || { cat "$dir/err.txt"; fail "$what: no message '$pattern'"; }
}
expect_error "missing file" "cannot open" $prog --data "$dir/none.txt" --steps 1
expect_error "bad option" "unknown option" $prog --bogus 1
expect_error "bad number" "not a whole number" $prog --hidden abc
# Strict numbers (issue 12): no spaces, '+', hex or exponents in integers; underflow named.
for v in " 5" "+3" "0x10" "1e3" "5 "; do
    expect_error "integer '$v'" "not a whole number" $prog --hidden "$v"
done
expect_error "float underflow" "out of range (too small" $prog --lr 1e-400
expect_error "integer range printed as integers" "outside \[1, 4096\]" $prog --hidden 5000
expect_error "bad cell" "not lstm, gru, elman, lstm-ln, gru-ln or lstm-peephole" $prog --cell rnn
expect_error "out of range" "outside" $prog --lr 5
head -c 100 "$dir/m.urm" > "$dir/cut.urm"
expect_error "truncated model" "cannot load" $prog sample --model "$dir/cut.urm"
expect_error "missing model" "cannot load" $prog sample --model "$dir/none.urm"
expect_error "no model" "required" $prog sample
expect_error "prime outside vocabulary" "vocabulary" $prog sample --model "$dir/m.urm" --prime "XYZ"

# Outside data (issue 12): only regular files, of a sane size; a text must have something to
# predict. A FIFO must not block (timeout), /dev/zero must not be read until memory runs out.
mkfifo "$dir/fifo" 2>/dev/null && {
    timeout 20 $prog --data "$dir/fifo" --steps 1 > "$dir/err.txt" 2>&1
    rc=$?
    [ $rc -ne 124 ] || fail "--data FIFO blocked"
    [ $rc -ne 0 ] || fail "--data FIFO: exit status 0"
    grep -q "not a regular file" "$dir/err.txt" || { cat "$dir/err.txt"; fail "FIFO: no message"; }
}
[ -c /dev/zero ] && expect_error "device" "not a regular file" timeout 20 $prog --data /dev/zero --steps 1
truncate -s 300M "$dir/huge.txt" 2>/dev/null &&
    expect_error "huge text" "too large: 314572800 bytes, and at most 268435456" $prog --data "$dir/huge.txt" --steps 1
rm -f "$dir/huge.txt"
printf 'a' > "$dir/one.txt"
expect_error "one-byte text" "too short" $prog --data "$dir/one.txt" --steps 1
head -c 5000 /dev/zero | tr '\0' 'a' > "$dir/aaa.txt"
expect_error "one-symbol text" "nothing to predict" $prog --data "$dir/aaa.txt" --steps 1 --batch 2

# Resuming a finished run is an error (status 1), and frees what it loaded: under valgrind
# when there is one, and under ASan's leak checker (which would exit 23) in a sanitizer build.
finished() {
    "$@" --data "$dir/text.txt" --steps 150 --batch 8 --bptt 16 --report 0 --resume "$dir/m.urm" \
        > "$dir/err.txt" 2>&1
}
finished $prog
rc=$?
[ $rc -eq 1 ] || { cat "$dir/err.txt"; fail "resume of a finished run: status $rc, expected 1"; }
grep -q "has already trained 150 steps" "$dir/err.txt" || { cat "$dir/err.txt"; fail "finished: no message"; }
if command -v valgrind > /dev/null && [ -x ./libtool ]; then
    finished ./libtool --mode=execute valgrind -q --leak-check=full --errors-for-leak-kinds=definite \
        --error-exitcode=99 $prog
    rc=$?
    [ $rc -eq 1 ] || { cat "$dir/err.txt"; fail "resume of a finished run under valgrind: status $rc"; }
fi

# A full disk: the log, the results, the samples (issue 12).
if [ -w /dev/full ]; then
    expect_error "log on a full disk" "cannot write /dev/full" $prog --data "$dir/text.txt" \
        --steps 3 --hidden 8 --batch 4 --bptt 8 --report 0 --log /dev/full
    $prog --data "$dir/text.txt" --steps 3 --hidden 8 --batch 4 --bptt 8 > /dev/full 2> "$dir/err.txt" &&
        fail "results on a full disk: exit status 0"
    grep -q "cannot write the standard output" "$dir/err.txt" || fail "results on a full disk: no message"
    $prog sample --model "$dir/m.urm" --prime "the " --length 20 > /dev/full 2> "$dir/err.txt" &&
        fail "samples on a full disk: exit status 0"
    grep -q "cannot write the standard output" "$dir/err.txt" || fail "samples on a full disk: no message"
fi
expect_error "save over a device" "not a regular file" $prog --data "$dir/text.txt" --steps 3 \
    --hidden 8 --batch 4 --bptt 8 --save /dev/null

$prog --help > /dev/null || fail "--help exited non-zero"
$prog sample --help > /dev/null || fail "sample --help exited non-zero"
echo "PASS"
