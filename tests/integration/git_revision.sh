#!/usr/bin/env bash
# git_revision.sh SOURCE_DIR CMAKE: cmake/git_revision.cmake, which stemd's build runs every time to
# name the revision in --version. The header follows each new commit (it was fixed at the last cmake
# configure: a later commit's binary quoted an older one, new-user pass 25, L8), says "-dirty" for a
# changed tree, is left untouched when nothing changed (no rebuild), and says "unknown" outside git.
set -euo pipefail
src=${1:?usage: git_revision.sh SOURCE_DIR CMAKE}
cmake=${2:-cmake}
script="$src/cmake/git_revision.cmake"
command -v git >/dev/null || { echo "git_revision: SKIP (no git)"; exit 77; }
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "git_revision: FAIL: $*"; exit 1; }
run() { "$cmake" -DSRC="$d/repo" -DOUT="$d/rev.hpp" -P "$script"; }
rev_in_header() { sed -n 's/^#define STEMD_GIT_REVISION "\(.*\)"$/\1/p' "$d/rev.hpp"; }

mkdir "$d/repo"
run
[ "$(rev_in_header)" = unknown ] || fail "outside git: '$(rev_in_header)', not unknown"
git -C "$d/repo" init -q
git -C "$d/repo" -c user.name=t -c user.email=t@t commit -q --allow-empty -m one
run
first=$(git -C "$d/repo" rev-parse --short=12 HEAD)
[ "$(rev_in_header)" = "$first" ] || fail "after the first commit: '$(rev_in_header)', not $first"
touch -d '2000-01-01' "$d/rev.hpp"
run
[ "$(stat -c %Y "$d/rev.hpp")" = "$(date -d '2000-01-01' +%s)" ] || fail "rewritten with nothing changed"
git -C "$d/repo" -c user.name=t -c user.email=t@t commit -q --allow-empty -m two
run
second=$(git -C "$d/repo" rev-parse --short=12 HEAD)
[ "$(rev_in_header)" = "$second" ] || fail "after a new commit: '$(rev_in_header)', not $second"
echo x >"$d/repo/f" && git -C "$d/repo" add f
run
[ "$(rev_in_header)" = "$second-dirty" ] || fail "a changed tree: '$(rev_in_header)', not $second-dirty"
echo "git_revision: PASS"
