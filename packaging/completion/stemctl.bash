# bash completion for stemctl (installed as share/bash-completion/completions/stemctl).
# Completes commands, global and per-command options, deck names, EQ bands, fade curves,
# position units and --host (host names). Needs nothing from the bash-completion package.

_stemctl() {
  local cur prev words cword
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=""
  ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
  words=("${COMP_WORDS[@]}")
  cword=$COMP_CWORD

  local commands="load unload play stop pause resume seek volume pan rate master deck levels crossfade eq fade tone
list voices status events ping watch send"
  local global_opts="--host --port -p --timeout -t --tcp --quiet -q --version --help -h"
  local decks="A B C D"

  # The value of an option that takes one.
  case $prev in
    --host)
      COMPREPLY=($(compgen -A hostname -- "$cur"))
      return
      ;;
    -p | --port | -t | --timeout | --volume | --start | --rate | --fade | --ramp | --interval | --count | --name)
      COMPREPLY=()
      return
      ;;
    --unit)
      COMPREPLY=($(compgen -W "s frac frames" -- "$cur"))
      return
      ;;
    --deck)
      COMPREPLY=($(compgen -W "A B C D" -- "$cur"))
      return
      ;;
  esac

  # The command word and how many arguments it has so far (options and their values skipped).
  local i cmd="" nargs=0 w
  for ((i = 1; i < cword; i++)); do
    w=${words[i]}
    case $w in
      --host | -p | --port | -t | --timeout | --volume | --start | --rate | --fade | --ramp | --interval | --count | \
        --name | --unit | --deck)
        ((i++))
        continue
        ;;
      -*) continue ;;
    esac
    if [[ -z $cmd ]]; then
      cmd=$w
    else
      ((nargs++))
    fi
  done

  if [[ -z $cmd ]]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "$global_opts" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$commands" -- "$cur"))
    fi
    return
  fi

  local opts=""
  case $cmd in
    load) opts="--name --absolute -a" ;;
    play) opts="--volume --loop --start --unit --rate --deck" ;;
    stop | pause | resume) opts="--fade" ;;
    seek) opts="--unit" ;;
    volume | pan | rate | master | deck) opts="--ramp" ;;
    status) opts="--all -a --json" ;;
    list | voices) opts="--json" ;;
    events) opts="--json --count" ;;
    watch) opts="--interval --count" ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts $global_opts" -- "$cur"))
    return
  fi
  case $cmd in
    deck | eq)
      if ((nargs == 0)); then
        COMPREPLY=($(compgen -W "$decks" -- "$cur"))
      elif [[ $cmd == eq ]] && ((nargs == 1)); then
        COMPREPLY=($(compgen -W "low mid high" -- "$cur"))
      fi
      ;;
    fade)
      ((nargs == 3)) && COMPREPLY=($(compgen -W "linear exponential equal_power s_curve" -- "$cur"))
      ;;
    load)
      if ((nargs == 1)); then  # a path: names with spaces stay whole
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      fi
      ;;
    send)
      ((nargs == 0)) && COMPREPLY=($(compgen -W "/stemd/load /stemd/unload /stemd/play /stemd/play_region /stemd/stop
/stemd/pause /stemd/resume /stemd/seek /stemd/volume /stemd/fade /stemd/pan /stemd/rate /stemd/master /stemd/deck
/stemd/list /stemd/voices /stemd/status /stemd/notify /stemd/ping /stemd/tone /stemd/stretch /stemd/quantize
/stemd/cookie /stemd/clear_schedule /get_status" -- "$cur"))
      ;;
  esac
}
complete -F _stemctl stemctl
