#!/bin/sh
# plot-log.sh: draws the training loss in an example's CSV log as a PNG, with gnuplot.
#
#   examples/plot-log.sh LOG.csv OUT.png [TITLE]
#
# Every example's log works: the x axis is the column named step, the y axis the column named
# loss (or train_loss), on a log scale; when the first column names the model (cell or
# model: adding, classify, bitag, jordan), one curve per model. Each curve is drawn raw (thin)
# and as a running mean (thick). Without gnuplot (apt-get install gnuplot-nox) it says so and
# exits 0 without drawing. Exit status 1 when gnuplot fails, 2 on a bad argument.
set -u
if [ $# -lt 2 ] || [ $# -gt 3 ] || [ "$1" = "--help" ] || [ "$1" = "-h" ]; then
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    [ $# -ge 1 ] && { [ "$1" = "--help" ] || [ "$1" = "-h" ]; } && exit 0
    exit 2
fi
log=$1
png=$2
title=${3:-"training loss: ${log##*/}"}
[ -r "$log" ] || { echo "plot-log.sh: cannot read $log" >&2; exit 2; }
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "plot-log.sh: gnuplot is not installed (apt-get install gnuplot-nox): $png not drawn" >&2
    exit 0
fi

header=$(head -n 1 "$log" | tr -d '\r')
# col NAME: the 1-based index of the column called NAME in the header, or nothing.
col() { printf '%s\n' "$header" | tr ',' '\n' | awk -v n="$1" '$0 == n { print NR; exit }'; }
xcol=$(col step)
ycol=$(col loss)
[ -n "$ycol" ] || ycol=$(col train_loss)
if [ -z "$xcol" ] || [ -z "$ycol" ]; then
    echo "plot-log.sh: $log has no step and loss (or train_loss) columns: $header" >&2
    exit 2
fi
first=$(printf '%s\n' "$header" | cut -d, -f1)
groups=""
case $first in
    cell|model) groups=$(tail -n +2 "$log" | cut -d, -f1 | awk 'NF && !seen[$0]++' | tr '\n' ' ') ;;
esac
rows=$(tail -n +2 "$log" | wc -l)
[ "$rows" -gt 0 ] || { echo "plot-log.sh: $log has no data rows" >&2; exit 2; }

# gnuplot strings in single quotes: a quote is written twice.
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/''/g")"; }
# The running mean's weight: about 2% of a curve's rows.
alpha=$(awk -v n="$rows" -v g="$(echo $groups | wc -w)" 'BEGIN {
    g = g > 0 ? g : 1; k = n / g / 50; if (k < 1) k = 1; printf "%.6f", 1 / k }')

{
    echo "set terminal pngcairo size 900,520 noenhanced font 'Helvetica,11'"
    echo "set output $(q "$png")"
    echo "set datafile separator ','"
    echo "set title $(q "$title")"
    echo "set xlabel 'step'"
    echo "set ylabel 'loss (log scale)'"
    echo "set logscale y"
    echo "set format y '%g'"
    echo "set grid"
    echo "set key top right"
    echo "a = $alpha"
    # The running mean: an exponential one, bias-corrected (m / w) so that it starts at the
    # mean of the first points; m and w restart at the first row of each pass over the file.
    echo "ema(y) = (m = (1 - a) * m + a * y, w = (1 - a) * w + a, m / w)"
    if [ -n "$groups" ]; then
        echo "groups = $(q "$groups")"
        echo "plot for [i=1:words(groups)] $(q "$log") skip 1 using $xcol:(strcol(1) eq word(groups, i) ? column($ycol) : NaN) with lines lw 1 lc i dt 3 notitle, \\"
        echo "     for [i=1:words(groups)] $(q "$log") skip 1 using (column(0) == 0 ? (m = 0, w = 0) : 0, column($xcol)):(strcol(1) eq word(groups, i) ? ema(column($ycol)) : NaN) with lines lw 2.5 lc i title word(groups, i)"
    else
        echo "plot $(q "$log") skip 1 using $xcol:$ycol with lines lw 1 lc 1 dt 3 notitle, \\"
        echo "     $(q "$log") skip 1 using (column(0) == 0 ? (m = 0, w = 0) : 0, column($xcol)):(ema(column($ycol))) with lines lw 2.5 lc 1 title 'loss (running mean)'"
    fi
} | gnuplot || { echo "plot-log.sh: gnuplot failed to draw $png" >&2; exit 1; }
[ -s "$png" ] || { echo "plot-log.sh: gnuplot wrote no $png" >&2; exit 1; }
echo "$png"
