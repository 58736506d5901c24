#!/bin/sh
# doc/graph-code.md shows examples/attention_cell.c in full, in pieces: the ```c blocks of the
# page, put together, must be the program line for line (blank lines aside). `make check`
# also builds and runs the program (a check program), so neither the page nor the code it
# shows can rot.
set -u
src=${srcdir:-.}
doc="$src/doc/graph-code.md"
prog="$src/examples/attention_cell.c"
[ -r "$doc" ] && [ -r "$prog" ] || { echo "test-graph-code: missing $doc or $prog"; exit 99; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/ur-graph-code.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
awk '/^```c$/ { inside = 1; next } /^```$/ { inside = 0; next } inside' "$doc" |
    grep -v '^[[:space:]]*$' > "$dir/doc.c"
grep -v '^[[:space:]]*$' "$prog" > "$dir/prog.c"
if [ ! -s "$dir/doc.c" ]; then
    echo "test-graph-code: doc/graph-code.md has no \`\`\`c block"
    exit 1
fi
if ! diff -u "$dir/prog.c" "$dir/doc.c"; then
    echo "test-graph-code: doc/graph-code.md no longer shows examples/attention_cell.c (diff above)"
    exit 1
fi
echo "test-graph-code: doc/graph-code.md shows examples/attention_cell.c in full"
