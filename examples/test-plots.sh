#!/bin/sh
# The pictures (run by make check from the build directory): examples/unfold writes its DOT
# drawings and, with Graphviz, their PNGs; adding --grad-plot draws the gradient-flow picture
# and examples/plot-log.sh the loss curves of every example's log, with gnuplot. Each PNG must
# exist, be non-empty and start with the PNG signature. Without Graphviz or gnuplot the
# programs must say so and still succeed; then the test is skipped (status 77) unless
# UR_REQUIRE_PLOTS=1 (CI), where a missing tool is a failure.
set -u
srcdir=${srcdir:-.}
OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export OPENBLAS_NUM_THREADS
dir=$(mktemp -d "${TMPDIR:-/tmp}/ur-plots.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
fail=0
skipped=""

# png FILE: a non-empty PNG.
png() {
    if [ ! -s "$1" ]; then echo "FAIL: $1 is missing or empty"; fail=1; return; fi
    sig=$(od -An -tx1 -N8 "$1" | tr -d ' \n')
    [ "$sig" = "89504e470d0a1a0a" ] || { echo "FAIL: $1 is not a PNG ($sig)"; fail=1; }
}

# A PATH with every program of this one but dot and gnuplot: the programs' "not installed".
bare="$dir/bare-bin"
mkdir "$bare"
IFS=:
for d in $PATH; do
    for f in "$d"/*; do
        n=${f##*/}
        case $n in dot|gnuplot|'*') continue ;; esac
        [ -x "$f" ] && [ ! -e "$bare/$n" ] && ln -s "$f" "$bare/$n"
    done
done
unset IFS

# ---- Graphviz: the unfolded graphs --------------------------------------------------------
if ! ./examples/unfold --out-dir "$dir" >"$dir/unfold.out" 2>&1; then
    echo "FAIL: examples/unfold:"; cat "$dir/unfold.out"; fail=1
fi
for n in elman3 jordan3-teacher jordan3-free elman6-checkpointed; do
    [ -s "$dir/$n.dot" ] || { echo "FAIL: $n.dot not written"; fail=1; }
    grep -q '^digraph tape {' "$dir/$n.dot" || { echo "FAIL: $n.dot is not a DOT graph"; fail=1; }
done
if command -v dot >/dev/null 2>&1; then
    for n in elman3 jordan3-teacher jordan3-free elman6-checkpointed; do png "$dir/$n.png"; done
    echo "Graphviz: 4 drawings rendered"
else
    skipped="$skipped Graphviz"
fi
mkdir "$dir/nodot"
if ! PATH=$bare ./examples/unfold --out-dir "$dir/nodot" >"$dir/nodot.out" 2>&1 ||
   ! grep -q "Graphviz is not installed" "$dir/nodot.out" || [ ! -s "$dir/nodot/elman3.dot" ]; then
    echo "FAIL: without Graphviz, unfold must say so and still write the DOT files:"
    cat "$dir/nodot.out"; fail=1
fi

# ---- gnuplot: the gradient-flow picture and loss curves ----------------------------------
if ! ./examples/adding --smoke --log "$dir/adding.csv" --grad-csv "$dir/grad.csv" \
        --grad-plot "$dir/grad.png" >"$dir/adding.out" 2>&1; then
    echo "FAIL: adding --grad-plot:"; cat "$dir/adding.out"; fail=1
fi
if command -v gnuplot >/dev/null 2>&1; then
    png "$dir/grad.png"
    for e in adding xor; do
        [ "$e" = adding ] || ./examples/$e --smoke --log "$dir/$e.csv" >/dev/null 2>&1 ||
            { echo "FAIL: $e --smoke"; fail=1; }
        "$srcdir/examples/plot-log.sh" "$dir/$e.csv" "$dir/$e-loss.png" >/dev/null ||
            { echo "FAIL: plot-log.sh $e.csv"; fail=1; }
        png "$dir/$e-loss.png"
    done
    echo "gnuplot: gradient flow and 2 loss curves drawn"
else
    skipped="$skipped gnuplot"
fi
if ! PATH=$bare ./examples/adding --smoke --log "$dir/a2.csv" --grad-csv "$dir/g2.csv" \
        --grad-plot "$dir/g2.png" >"$dir/nognuplot.out" 2>&1 ||
   ! grep -q "gnuplot is not installed" "$dir/nognuplot.out"; then
    echo "FAIL: without gnuplot, adding must say so and go on:"; tail -5 "$dir/nognuplot.out"; fail=1
fi
if ! PATH=$bare "$srcdir/examples/plot-log.sh" "$dir/a2.csv" "$dir/a2.png" 2>"$dir/nop.err" ||
   ! grep -q "gnuplot is not installed" "$dir/nop.err"; then
    echo "FAIL: without gnuplot, plot-log.sh must say so and exit 0"; fail=1
fi

[ $fail -eq 0 ] || exit 1
if [ -n "$skipped" ]; then
    if [ "${UR_REQUIRE_PLOTS:-0}" = 1 ]; then
        echo "FAIL: not installed:$skipped (UR_REQUIRE_PLOTS=1)"; exit 1
    fi
    echo "SKIP: not installed:$skipped (apt-get install graphviz gnuplot-nox); the programs said so"
    exit 77
fi
exit 0
