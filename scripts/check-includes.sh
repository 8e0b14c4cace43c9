#!/usr/bin/env bash
# The include rules that keep the architecture what the tree says it is
# (README "Architecture"):
#
#   cli        -> anything
#   modes      -> core, codecs, the public headers
#   core       -> core, codecs, lib, the public headers       (never a primitive or a mode)
#   primitives -> primitives, codecs, lib, the public headers (never core or modes internals)
#   codecs     -> codecs, the public headers
#   lib        -> lib, the public headers: loaders of shared libraries that
#                 core and primitives both use (libpq: the db primitive and
#                 the PostgreSQL audit log)
#
# The public headers are include/runbook/*.h (runbook.h, host.h).  A quoted
# include is resolved by file name in src/<layer>/; system includes (<...>)
# are not checked.  Exits 1 listing every violation.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A allowed=(
  [cli]="cli modes core primitives codecs lib"
  [modes]="modes core codecs lib"
  [core]="core codecs lib"
  [primitives]="primitives codecs lib"
  [codecs]="codecs"
  [lib]="lib"
)

layer_of() { # the layer that holds header $1, or "public" / "generated" / "unknown"
  case "$1" in runbook/*) echo public; return ;; esac
  for l in cli core modes primitives codecs lib; do
    [ -e "src/$l/$1" ] && { echo "$l"; return; }
  done
  echo unknown
}

bad=0
checked=0
for layer in cli core modes primitives codecs lib; do
  for f in src/$layer/*.c src/$layer/*.h; do
    [ -e "$f" ] || continue
    checked=$((checked + 1))
    while IFS= read -r line; do
      header=$(sed -E 's/^#include "([^"]+)".*/\1/' <<<"$line")
      owner=$(layer_of "$header")
      [ "$owner" = public ] && continue
      if [ "$owner" = unknown ]; then
        echo "$f: #include \"$header\": no such header in src/*/ or include/" >&2
        bad=1
        continue
      fi
      case " ${allowed[$layer]} " in
        *" $owner "*) ;;
        *) echo "$f: #include \"$header\": $layer may not include $owner (src/$owner/$header)" >&2
           bad=1 ;;
      esac
    done < <(grep -E '^#include "' "$f" || true)
  done
done
if [ "$bad" -ne 0 ]; then
  echo "check-includes: the layers above include what they may not (see the rules at the top of $0)" >&2
  exit 1
fi
echo "check-includes: $checked files follow the layer rules"
