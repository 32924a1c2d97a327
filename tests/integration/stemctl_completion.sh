#!/usr/bin/env bash
# stemctl_completion.sh SOURCE_DIR STEMCTL: the shell completions in packaging/completion.
# bash: sources stemctl.bash in a plain bash (no bash-completion package) and checks COMPREPLY
# for typed command lines (`stemctl sta<TAB>` → status, decks, bands, curves, options, --host),
# and that every command of `stemctl --help` is offered. zsh: `zsh -n` on _stemctl and the same
# command list in it (skipped without zsh). Exit 0 pass, 1 fail.
set -uo pipefail
SRC=$1
STEMCTL=$2
BASH_COMP=$SRC/packaging/completion/stemctl.bash
ZSH_COMP=$SRC/packaging/completion/_stemctl
fails=0
fail() { echo "stemctl_completion: FAIL: $*"; fails=$((fails + 1)); }

# COMPREPLY for a command line typed up to the cursor at its end ("stemctl sta").
complete_line() {
  bash --norc --noprofile -c '
    source "$1" || exit 9
    read -r -a COMP_WORDS <<<"$2"
    [[ $2 == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE=$2
    COMP_POINT=${#2}
    _stemctl stemctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " " | sed "s/ $//"' _ "$BASH_COMP" "$1"
}
expect() {  # expect "typed line" "sorted words offered"
  local got
  got=$(complete_line "$1")
  [ "$got" = "$2" ] || fail "'$1<TAB>' offered '$got', expected '$2'"
}

bash --norc --noprofile -c 'source "$1" && complete -p stemctl' _ "$BASH_COMP" | grep -q -- "-F _stemctl stemctl" ||
  fail "stemctl.bash does not register _stemctl for stemctl"
expect "stemctl sta" "status"
expect "stemctl -p 57120 --host ::1 sta" "status"
expect "stemctl cr" "crossfade"
expect "stemctl deck " "A B C D"
expect "stemctl eq " "A B C D"
expect "stemctl eq B " "high low mid"
expect "stemctl eq B m" "mid"
expect "stemctl fade 1 0 2 " "equal_power exponential linear s_curve"
expect "stemctl play 1 --unit " "frac frames s"
expect "stemctl play 1 --deck " "A B C D"
expect "stemctl status --" "--all --help --host --json --port --quiet --tcp --timeout --version"
expect "stemctl events --j" "--json"
expect "stemctl --ho" "--host"
expect "stemctl --port " ""
# --host completes host names (bash's own list, from /etc/hosts and $HOSTFILE).
hosts=$(mktemp)
trap 'rm -f "$hosts"' EXIT
printf '127.0.0.1 stemd-box.example\n' >"$hosts"
got=$(HOSTFILE=$hosts complete_line "stemctl --host stemd-b")
[ "$got" = "stemd-box.example" ] || fail "--host stemd-b<TAB> offered '$got', expected stemd-box.example"

# Every command stemctl has is offered (the completion does not fall behind the binary).
commands=$("$STEMCTL" --help | sed -n '/^Subcommands:/,$p' | awk 'NR > 1 && /^  [a-z]/ {print $1}' | sort | tr '\n' ' ' | sed 's/ $//')
[ -n "$commands" ] || fail "no commands in stemctl --help"
expect "stemctl " "$commands"

if command -v zsh >/dev/null; then
  zsh -n "$ZSH_COMP" || fail "_stemctl: zsh syntax"
  head -n1 "$ZSH_COMP" | grep -qx "#compdef stemctl" || fail "_stemctl does not start with #compdef stemctl"
  for c in $commands; do
    grep -q "'$c:" "$ZSH_COMP" || fail "_stemctl does not offer the command $c"
  done
else
  echo "stemctl_completion: zsh not installed: zsh checks skipped (scripts/setup.sh installs it)"
fi

[ "$fails" -eq 0 ] && echo "stemctl_completion: PASS"
[ "$fails" -eq 0 ]
