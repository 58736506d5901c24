#!/bin/sh
# doc/tutorial.md shows examples/tutorial_cell.c in full, in pieces: the ```c blocks of the
# page, put together, must be the program line for line (blank lines aside), so the page
# cannot drift from the code that `make check` compiles and runs.
set -u
src=${srcdir:-.}
doc="$src/doc/tutorial.md"
prog="$src/examples/tutorial_cell.c"
[ -r "$doc" ] && [ -r "$prog" ] || { echo "test-tutorial: missing $doc or $prog"; exit 99; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/ur-tutorial.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
awk '/^```c$/ { inside = 1; next } /^```$/ { inside = 0; next } inside' "$doc" |
    grep -v '^[[:space:]]*$' > "$dir/doc.c"
grep -v '^[[:space:]]*$' "$prog" > "$dir/prog.c"
if ! diff -u "$dir/prog.c" "$dir/doc.c"; then
    echo "test-tutorial: doc/tutorial.md no longer shows examples/tutorial_cell.c (diff above)"
    exit 1
fi
echo "test-tutorial: doc/tutorial.md shows examples/tutorial_cell.c in full"
