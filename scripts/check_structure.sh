#!/usr/bin/env bash
# check_structure.sh [SOURCE_DIR]: the size limits of issue 13 over SOURCE_DIR/src (default: this
# repository's). Fails (exit 1) and lists every offender when
#   - a function is longer than 120 lines (definition line to closing brace, as universal-ctags sees
#     it: a lambda counts toward the function it is written in), or
#   - a source file (.cpp, .hpp, .h, .c) is longer than 600 lines.
# Exit 0: within the limits; 2: cannot check (no universal-ctags). ctest runs it as structure_limits.
set -uo pipefail
root=$(cd "${1:-$(dirname "$0")/..}" && pwd)
max_function=${STEMD_MAX_FUNCTION_LINES:-120}
max_file=${STEMD_MAX_FILE_LINES:-600}
cd "$root" || exit 2
[[ -d src ]] || { echo "check_structure: no src/ in $root"; exit 2; }
if ! ctags --version 2>/dev/null | grep -q 'Universal Ctags'; then
  echo "check_structure: universal-ctags is needed (scripts/setup.sh installs it)"; exit 2
fi
fail=0

# One line per function definition: end line, start line, file, name. A definition without an
# end line (ctags could not find its closing brace) is reported too: it cannot be measured.
functions=$(ctags -R --languages=C,C++ --langmap=C++:+.h --fields=+ne --kinds-c++=f --kinds-c=f -x \
                  --_xformat='%e %n %F %N' src) || { echo "check_structure: ctags failed"; exit 2; }
long=$(awk -v max="$max_function" '
  $4 ~ /^__anon/ { next }  # a lambda: its lines are already in its enclosing function
  $1 !~ /^[0-9]+$/ { print "?", $3 ":" $2, $4, "(no end line found)"; next }
  { n = $1 - $2 + 1; if (n > max) print n, $3 ":" $2, $4 }' <<<"$functions" | sort -rn)
if [[ -n $long ]]; then
  echo "check_structure: functions longer than $max_function lines (lines, file:line, name):"
  sed 's/^/  /' <<<"$long"
  fail=1
fi

big=$(find src -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.c' \) -print0 |
      xargs -0 wc -l | awk -v max="$max_file" '$2 != "total" && $1 > max { print $1, $2 }' | sort -rn)
if [[ -n $big ]]; then
  echo "check_structure: source files longer than $max_file lines (lines, file):"
  sed 's/^/  /' <<<"$big"
  fail=1
fi

if [[ $fail == 0 ]]; then
  echo "check_structure: $(wc -l <<<"$functions") functions within $max_function lines," \
       "every source file within $max_file lines"
fi
exit $fail
