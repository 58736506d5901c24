#!/bin/sh
# Each page of doc/ that walks through a program shows it in full, in pieces: the ```c blocks
# of the page, put together, must be the program line for line (blank lines aside), so a page
# cannot drift from the code that `make check` compiles and runs. The pairs:
#     doc/tutorial.md     examples/tutorial_cell.c   (a user's IRNN cell, trained and checked)
#     doc/graph-code.md   examples/attention_cell.c  (a user's attention cell)
set -u
src=${srcdir:-.}
dir=$(mktemp -d "${TMPDIR:-/tmp}/ur-docs.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
status=0
for pair in tutorial.md:tutorial_cell.c graph-code.md:attention_cell.c; do
    doc="$src/doc/${pair%%:*}"
    prog="$src/examples/${pair#*:}"
    [ -r "$doc" ] && [ -r "$prog" ] || { echo "test-docs: missing $doc or $prog"; exit 99; }
    awk '/^```c$/ { inside = 1; next } /^```$/ { inside = 0; next } inside' "$doc" |
        grep -v '^[[:space:]]*$' > "$dir/doc.c"
    grep -v '^[[:space:]]*$' "$prog" > "$dir/prog.c"
    if [ ! -s "$dir/doc.c" ]; then
        echo "test-docs: $doc has no \`\`\`c block"
        status=1
    elif ! diff -u "$dir/prog.c" "$dir/doc.c"; then
        echo "test-docs: $doc no longer shows $prog (diff above)"
        status=1
    else
        echo "test-docs: $doc shows $prog in full"
    fi
done
exit $status
