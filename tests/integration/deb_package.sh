#!/usr/bin/env bash
# deb_package.sh BUILD_DIR: builds the .deb from this build dir (cpack -G DEB) and checks it:
# the control fields (name, version, Depends on Debian 12's runtime packages), the conffile,
# the maintainer scripts (create the user, reload systemd, never enable or start the service),
# every installed path and nothing under /usr/local or the build tree; the Maintainer and Homepage
# fields; then extracts it and runs the packaged stemd (--version, and the packaged config accepted
# by the packaged binary) and checks the DEP-5 copyright file and the installed docs.
# Exit 0 pass, 1 fail, 77 skip (cpack, dpkg-deb or dpkg-shlibdeps missing).
set -uo pipefail
BUILD=$(cd "$1" && pwd)
TEST_NAME=deb_package
fails=0
fail() { echo "deb_package: FAIL: $*"; fails=$((fails + 1)); }
# shellcheck source-path=SCRIPTDIR source=deb_common.sh
source "$(dirname "$0")/deb_common.sh"
deb_build "$BUILD" "*"

# ---- control fields
info=$(dpkg-deb --info "$deb")
field() { dpkg-deb --field "$deb" "$1"; }
[ "$(field Package)" = stemd ] || fail "Package is '$(field Package)', not stemd"
version=$("$BUILD/src/stemd" --version | head -1 | awk '{print $2}')  # "stemd 0.1.0 (git …)"
[ "$(field Version)" = "$version" ] || fail "Version '$(field Version)' is not stemd --version's '$version'"
deb_check_depends
grep -q "^ Maintainer: ." <<<"$info" || fail "no Maintainer"
# A Maintainer Debian accepts ("Name <address>"), not a local mailbox; a Homepage that is a URL.
maintainer=$(field Maintainer)
echo "deb_package: Maintainer: $maintainer; Homepage: $(field Homepage)"
[[ "$maintainer" =~ ^[^\<\>]+\ \<[^@\ \<\>]+@[^@\ \<\>]+\.[a-z]+\>$ ]] || fail "Maintainer '$maintainer' is not 'Name <user@domain.tld>'"
case "$maintainer" in *@localhost*) fail "Maintainer '$maintainer' is a localhost mailbox" ;; esac
[[ "$(field Homepage)" =~ ^https?://[A-Za-z0-9.-]+\.[a-z]+(/|$) ]] || fail "Homepage '$(field Homepage)' is not a URL"

# ---- conffile and maintainer scripts
mkdir -p "$tmp/control"
dpkg-deb --control "$deb" "$tmp/control"
grep -qx "/etc/stemd/stemd.conf" "$tmp/control/conffiles" 2>/dev/null || fail "/etc/stemd/stemd.conf is not a conffile"
for s in postinst prerm postrm; do
  [ -x "$tmp/control/$s" ] || { fail "no executable $s"; continue; }
  sh -n "$tmp/control/$s" || fail "$s: shell syntax"
  grep -v '^[[:space:]]*#' "$tmp/control/$s" | grep -Eq "systemctl (enable|start|restart)|deb-systemd-invoke start" &&
    fail "$s enables or starts the service"
done
grep -q "systemd-sysusers /usr/lib/sysusers.d/stemd.conf" "$tmp/control/postinst" || fail "postinst does not create the user"
grep -q "daemon-reload" "$tmp/control/postinst" || fail "postinst does not reload systemd"
# Run them against stubs that record what they would do to the system.
mkdir -p "$tmp/stub"
for cmd in systemd-sysusers systemctl useradd; do
  printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$cmd" "$tmp/calls" >"$tmp/stub/$cmd"
  chmod +x "$tmp/stub/$cmd"
done
: >"$tmp/calls"
PATH="$tmp/stub:$PATH" sh "$tmp/control/postinst" configure || fail "postinst configure failed"
PATH="$tmp/stub:$PATH" sh "$tmp/control/prerm" upgrade || fail "prerm upgrade failed"
PATH="$tmp/stub:$PATH" sh "$tmp/control/postrm" upgrade || fail "postrm upgrade failed"
grep -qx "systemd-sysusers /usr/lib/sysusers.d/stemd.conf" "$tmp/calls" || fail "postinst did not run systemd-sysusers"
grep -Eq "^systemctl (enable|start|restart|stop)" "$tmp/calls" && fail "maintainer scripts (configure/upgrade) ran: $(cat "$tmp/calls")"
if [ -d /run/systemd/system ]; then
  grep -q "^systemctl daemon-reload" "$tmp/calls" || fail "postinst did not reload systemd"
else
  grep -q "^systemctl" "$tmp/calls" && fail "systemctl called without systemd running: $(cat "$tmp/calls")"
fi

# ---- contents
dpkg-deb --contents "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$tmp/contents"
for path in /usr/bin/stemd /usr/bin/stemctl /usr/lib/systemd/system/stemd.service /usr/lib/systemd/user/stemd.service \
            /usr/lib/sysusers.d/stemd.conf \
            /etc/stemd/stemd.conf /usr/share/man/man1/stemd.1.gz /usr/share/man/man1/stemctl.1.gz \
            /usr/share/doc/stemd/README.md /usr/share/doc/stemd/copyright \
            /usr/share/doc/stemd/docs/architecture.md /usr/share/doc/stemd/docs/testing.md \
            /usr/share/doc/stemd/docs/benchmarks.md /usr/share/doc/stemd/docs/security.md \
            /usr/share/stemd/presets/pi4.conf /usr/share/stemd/presets/pi5.conf \
            /usr/share/stemd/presets/desktop.conf /usr/share/stemd/presets/workstation.conf \
            /usr/share/stemd/presets/live.conf /usr/share/bash-completion/completions/stemctl \
            /usr/share/zsh/vendor-completions/_stemctl \
            /usr/share/stemd/web/index.html /usr/share/stemd/web/app.js /usr/share/stemd/web/worklet.js \
            /usr/share/stemd/web/style.css /usr/share/doc/stemd/docs/monitor.md; do
  grep -qx "$path" "$tmp/contents" || fail "missing $path"
done
grep -E "^/usr/local|^/home|^/tmp|^/work|$BUILD" "$tmp/contents" && fail "paths outside the system layout (above)"
grep -Ev "^/(usr|etc)/" "$tmp/contents" | grep -v '^/$' && fail "unexpected top-level paths (above)"

# ---- the packaged files work
root="$tmp/root"
dpkg-deb --extract "$deb" "$root"
out=$("$root/usr/bin/stemd" --version 2>&1) || fail "packaged stemd --version: $out"
[[ "$(head -1 <<<"$out")" == "stemd $version (git "* ]] || fail "packaged stemd --version says '$out'"
{ grep -q "^reads: " <<<"$out" && grep -q "WAV" <<<"$out"; } || fail "packaged stemd --version does not list libsndfile's formats: $out"
"$root/usr/bin/stemctl" --help >/dev/null 2>&1 || fail "packaged stemctl --help"
bash --norc --noprofile -c 'source "$1" && complete -p stemctl' _ "$root/usr/share/bash-completion/completions/stemctl" \
  >/dev/null 2>&1 || fail "the packaged bash completion does not register stemctl"
grep -qx "ExecStart=/usr/bin/stemd --config /etc/stemd/stemd.conf" "$root/usr/lib/systemd/system/stemd.service" ||
  fail "the unit's ExecStart is not the packaged binary and config: $(grep ExecStart "$root/usr/lib/systemd/system/stemd.service")"
if ! out=$("$root/usr/bin/stemd" --config "$root/etc/stemd/stemd.conf" --backend null --no-osc --duration 0.05 2>&1); then
  fail "the packaged stemd refuses the packaged config: $out"
fi
# The packaged web monitor serves the packaged page (/usr/share/stemd/web beside /usr/bin/stemd):
# it looked in the build's own prefix (/usr/local) and then in this source tree, so on a Pi that got
# the .deb --http-port refused to start ("no index.html") — and here it served the source tree.
if out=$("$root/usr/bin/stemd" --backend null --no-osc --http-port 0 --duration 0.2 2>&1); then
  grep -qF "page from $root/usr/share/stemd/web)" <<<"$out" ||
    fail "the packaged stemd does not serve the packaged page: $(grep -i 'web monitor' <<<"$out")"
else
  fail "the packaged stemd --http-port 0: $out"
fi
# The copyright file: machine-readable (DEP-5), GPL-3+ for stemd's own files, the same contact as
# the Maintainer field, and a stand-alone paragraph with the text of every licence it names.
copyright="$root/usr/share/doc/stemd/copyright"
if [ -f "$copyright" ]; then
  [ "$(head -n1 "$copyright")" = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/" ] ||
    fail "copyright: not DEP-5 (first line '$(head -n1 "$copyright")')"
  grep -qx "Upstream-Name: stemd" "$copyright" || fail "copyright: no Upstream-Name: stemd"
  grep -qxF "Upstream-Contact: $maintainer" "$copyright" || fail "copyright: Upstream-Contact is not the Maintainer ($maintainer)"
  awk '/^Files: \*$/ {f = 1; next} f && /^License:/ {print $2; exit} /^$/ {f = 0}' "$copyright" | grep -qx "GPL-3+" ||
    fail "copyright: 'Files: *' is not under GPL-3+"
  grep -q 'common-licenses/GPL-3' "$copyright" || fail "copyright: does not point to /usr/share/common-licenses/GPL-3"
  # Every licence a "License:" line names has its text somewhere: "License: NAME" followed by
  # indented lines (a stand-alone paragraph).
  for lic in $(grep -h '^License: ' "$copyright" | awk '{print $2}' | sort -u); do
    awk -v l="$lic" '$0 == "License: " l {getline; if ($0 ~ /^ /) found = 1} END {exit !found}' "$copyright" ||
      fail "copyright: no text for licence $lic"
  done
  [ "$(stat -c %a "$copyright")" = 644 ] || fail "copyright: mode $(stat -c %a "$copyright"), not 644"
else
  fail "no /usr/share/doc/stemd/copyright in the package"
fi
# The README's links to docs/ resolve in the installed copy.
grep -o '](docs/[^)#]*' "$root/usr/share/doc/stemd/README.md" | sed 's/^](//' | sort -u | while read -r rel; do
  [ -f "$root/usr/share/doc/stemd/$rel" ] || echo "$rel"
done >"$tmp/missing-docs"
[ -s "$tmp/missing-docs" ] && fail "the installed README links to missing files: $(tr '\n' ' ' <"$tmp/missing-docs")"
zcat "$root/usr/share/man/man1/stemd.1.gz" | grep -q '^\.SH OPTIONS' || fail "stemd.1 has no OPTIONS section"
zcat "$root/usr/share/man/man1/stemd.1.gz" | grep -q 'buffer\\-size' || fail "stemd.1 does not list --buffer-size"
zcat "$root/usr/share/man/man1/stemctl.1.gz" | grep -q '^\.SH' || fail "stemctl.1 is not a man page"

[ "$fails" -eq 0 ] || { echo "deb_package: $fails check(s) failed"; exit 1; }
echo "deb_package: PASS"
