#!/usr/bin/env bash
# package_deb: the Debian package as an operator meets it (docs/packaging.md).
#   1. cpack -G DEB from this build (no second tree): the package lands in a
#      scratch directory, not the build directory;
#   2. dpkg-deb --info: name, version, Depends from dpkg-shlibdeps (every one
#      satisfied by this machine's packages), the conffile /etc/npa/agent.conf;
#   3. dpkg-deb --contents: the product under /usr, the unit, the config, the
#      man pages, the plug-ins where the packaged shell looks;
#   4. dpkg --root into a scratch root (maintainer scripts run chrootless
#      with DPKG_ROOT set, so they leave this machine's systemd alone); the
#      packaged npa-conform --abi-only passes the packaged plug-ins;
#   5. systemd-analyze verify on the installed unit (ExecStart mapped into the
#      scratch root, MANPATH there, so Documentation= resolves the man pages);
#   6. starts the agent from the unit's ExecStart line as systemd would for
#      Type=notify (NOTIFY_SOCKET bound here): READY=1 with a STATUS, the
#      packaged npactl answers, SIGTERM (KillSignal) ends it with STOPPING=1
#      and exit 0;
#   7. dpkg -r keeps an edited conffile; dpkg --purge leaves nothing of the
#      package in the root.
# Usage: run_package_test.sh BUILD_DIR. Cleans up what it made.
set -u
B=$1
tmp=$(mktemp -d /tmp/npa-deb.XXXXXX)
apid=; lpid=
cleanup() {
  [ -n "$apid" ] && { kill -9 "$apid" 2>/dev/null; wait "$apid" 2>/dev/null; }
  [ -n "$lpid" ] && { kill "$lpid" 2>/dev/null; wait "$lpid" 2>/dev/null; }
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
step() { echo "--- $*"; }
cache() { sed -n "s/^$1:[A-Z]*=//p" "$B/CMakeCache.txt"; }

step "cpack -G DEB"
t0=$(date +%s)
cpack --config "$B/CPackConfig.cmake" -G DEB -B "$tmp/out" >"$tmp/cpack.log" 2>&1 || { cat "$tmp/cpack.log"; fail "cpack"; }
deb=$(ls "$tmp"/out/npa_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || { cat "$tmp/cpack.log"; fail "cpack made no npa_*.deb"; }
echo "$(basename "$deb"): $(stat -c %s "$deb") bytes in $(( $(date +%s) - t0 )) s"
rm -rf "$tmp/out/_CPack_Packages"

step "dpkg-deb --info"
info() { dpkg-deb --field "$deb" "$1"; }
[ "$(info Package)" = npa ] || fail "Package is '$(info Package)'"
version=$(cache CMAKE_PROJECT_VERSION)
[ "$(info Version)" = "$version" ] || fail "Version is '$(info Version)', not '$version'"
depends=$(info Depends)
echo "Depends: $depends"
for lib in libc6 libstdc++6 libsystemd0 libssl3; do
  grep -q "\b$lib\b" <<<"$depends" || fail "Depends lacks $lib (dpkg-shlibdeps did not run?)"
done
# Every dependency is one this machine has, at a version that satisfies it.
IFS=',' read -ra deps <<<"$depends"
for d in "${deps[@]}"; do
  d=${d# }
  name=${d%% *}
  have=$(dpkg-query -W -f='${Version}' "$name" 2>/dev/null) || fail "Depends names $name, which is not installed here"
  if [[ $d =~ \((..?)\ ([^\)]*)\) ]]; then
    op=${BASH_REMATCH[1]}; want=${BASH_REMATCH[2]}
    case $op in '>=') op=ge ;; '<=') op=le ;; '=') op=eq ;; '>>') op=gt ;; '<<') op=lt ;; esac
    dpkg --compare-versions "$have" "$op" "$want" || fail "Depends $d: this machine has $name $have"
  fi
done
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles >"$tmp/conffiles" || fail "no conffiles in the control archive"
[ "$(cat "$tmp/conffiles")" = /etc/npa/agent.conf ] || fail "conffiles is '$(cat "$tmp/conffiles")'"

step "dpkg-deb --contents"
dpkg-deb --contents "$deb" | awk '{print $6}' | sed 's#^\./#/#' >"$tmp/contents"
# Relative (the default): under the package's prefix, beside libnpa_shell,
# where the packaged shell looks first (docs/packaging.md, "Paths").
plugindir=$(cache NPA_PLUGIN_INSTALL_DIR)
case $plugindir in /*) ;; *) plugindir=$(cache NPA_DEB_PREFIX)/$plugindir ;; esac
for f in /usr/bin/npa-agent /usr/bin/npactl /usr/bin/npa-conform /usr/lib/libnpa_shell.so.1 \
         /usr/include/npa/shell.h /usr/include/npa/plugin.h /usr/include/npa/plugin_services.h \
         /usr/lib/cmake/npa/npaConfig.cmake \
         /usr/lib/pkgconfig/npa-shell.pc /usr/lib/pkgconfig/npa-plugin.pc \
         /usr/lib/systemd/system/npa-agent.service /etc/npa/agent.conf \
         /usr/share/man/man8/npa-agent.8 /usr/share/man/man8/npactl.8 /usr/share/man/man8/npa-conform.8 \
         "$plugindir/npa_plugin_e1000e.so" "$plugindir/npa_plugin_virtio_net.so"; do
  grep -qxF "$f" "$tmp/contents" || fail "$f is not in the package"
done
# Nothing else outside /usr and /etc/npa, and nothing under /usr/local: a
# package that the tree was configured for /usr/local still installs to /usr.
stray=$(grep -v -e '^/$' -e '^/usr/' -e '^/etc/$' -e '^/etc/npa/' "$tmp/contents" | head -3)
[ -z "$stray" ] || fail "paths outside /usr and /etc/npa: $stray"
stray=$(grep '^/usr/local/' "$tmp/contents" | head -3)
[ -z "$stray" ] || fail "paths under /usr/local: $stray"
echo "$(grep -vc '/$' "$tmp/contents") files; plug-ins in $plugindir"

step "dpkg --root $tmp/root -i"
R=$tmp/root
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/var/log"
touch "$R/var/lib/dpkg/status" "$R/var/lib/dpkg/available"
# --force-depends: the scratch root has no libc6 of its own; the Depends were
# checked against this machine above. Chrootless: the root has no /bin/sh.
dpkg_r() { dpkg --root="$R" --force-not-root --force-script-chrootless --force-depends "$@"; }
dpkg_r -i "$deb" >"$tmp/dpkg-i.log" 2>&1 || { cat "$tmp/dpkg-i.log"; fail "dpkg -i"; }
[ "$(dpkg-query --root="$R" -W -f='${Status}' npa)" = "install ok installed" ] ||
  fail "npa is '$(dpkg-query --root="$R" -W -f='${Status}' npa)' in the scratch root"
grep -q '^prefix=/usr$' "$R/usr/lib/pkgconfig/npa-shell.pc" || fail "npa-shell.pc: $(grep ^prefix "$R/usr/lib/pkgconfig/npa-shell.pc")"
# The packaged shell searches npa/plugins beside itself (dladdr, unit-tested
# in plugin_loader_test): that is where the plug-ins are.
[ "$plugindir" = /usr/lib/npa/plugins ] || fail "the plug-ins are in $plugindir, not beside /usr/lib/libnpa_shell.so.1"

# The bundled plug-ins pass the packaged conformance runner's ABI checks.
for p in "$R$plugindir"/npa_plugin_*.so; do
  "$R/usr/bin/npa-conform" --abi-only "$p" >"$tmp/abi.out" 2>&1 || { cat "$tmp/abi.out"; fail "npa-conform --abi-only $p"; }
done
echo "packaged plug-ins pass the packaged npa-conform --abi-only: $(cd "$R$plugindir" && ls npa_plugin_*.so | tr '\n' ' ')"

step "systemd-analyze verify on the installed unit"
unit=$R/usr/lib/systemd/system/npa-agent.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "$exec_start" = "/usr/bin/npa-agent --config /etc/npa/agent.conf" ] || fail "ExecStart is '$exec_start'"
grep -qx 'Type=notify' "$unit" || fail "the unit is not Type=notify"
mkdir -p "$tmp/verify"
sed "s#^ExecStart=/#ExecStart=$R/#" "$unit" >"$tmp/verify/npa-agent.service"
MANPATH=$R/usr/share/man systemd-analyze verify "$tmp/verify/npa-agent.service" >"$tmp/verify.log" 2>&1 ||
  { cat "$tmp/verify.log"; fail "systemd-analyze verify"; }
[ -s "$tmp/verify.log" ] && { cat "$tmp/verify.log"; fail "systemd-analyze verify warned"; }
echo "verified: $exec_start"

step "start the installed agent from ExecStart, as systemd does for Type=notify"
# ExecStart's paths mapped into the root; the control socket moved into the
# scratch directory (a flag overrides agent.conf, as a drop-in would).
read -ra argv <<<"$exec_start"
cmd=("$R${argv[0]}")
for a in "${argv[@]:1}"; do case $a in /*) cmd+=("$R$a") ;; *) cmd+=("$a") ;; esac; done
ctl=$tmp/agent.sock
cmd+=(--control "$ctl" --name "pkgtest$$" --restart-roster none)
notify=$tmp/notify.sock
python3 - "$notify" >"$tmp/notify.log" 2>&1 <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
try:
    while True:
        for line in s.recv(4096).decode().splitlines():
            print(line, flush=True)
except socket.timeout:
    pass
EOF
lpid=$!
for _ in $(seq 100); do [ -S "$notify" ] && break; sleep 0.05; done
[ -S "$notify" ] || fail "the notify listener did not bind"
NOTIFY_SOCKET=$notify "${cmd[@]}" >"$tmp/agent.log" 2>&1 &
apid=$!
for _ in $(seq 200); do grep -qx 'READY=1' "$tmp/notify.log" && break; sleep 0.05; done
grep -qx 'READY=1' "$tmp/notify.log" || { cat "$tmp/agent.log" "$tmp/notify.log"; fail "no READY=1 from the installed agent in 10 s"; }
grep -q '^STATUS=' "$tmp/notify.log" || fail "no STATUS= with READY=1"
echo "notify: $(tr '\n' ' ' <"$tmp/notify.log")"
timeout 10 "$R/usr/bin/npactl" --socket "$ctl.admin" agent >"$tmp/npactl.out" 2>&1 ||
  { cat "$tmp/npactl.out"; fail "the packaged npactl could not ask the agent"; }
grep -q "pkgtest$$" "$tmp/npactl.out" || { cat "$tmp/npactl.out"; fail "npactl agent does not name pkgtest$$"; }
kill -TERM "$apid"
rc=
for _ in $(seq 200); do kill -0 "$apid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$apid" 2>/dev/null && fail "the agent did not stop within 10 s of SIGTERM"
wait "$apid"; rc=$?; apid=
[ "$rc" = 0 ] || { tail "$tmp/agent.log"; fail "the agent exited $rc after SIGTERM"; }
for _ in $(seq 40); do grep -qx 'STOPPING=1' "$tmp/notify.log" && break; sleep 0.05; done
grep -qx 'STOPPING=1' "$tmp/notify.log" || fail "no STOPPING=1"
[ -e "$ctl" ] && fail "the agent left its control socket"
echo "READY=1, npactl answered, SIGTERM -> STOPPING=1, exit 0"

step "dpkg -r keeps an edited conffile, dpkg --purge leaves nothing"
echo "name edited-by-operator" >>"$R/etc/npa/agent.conf"
dpkg_r -r npa >"$tmp/dpkg-r.log" 2>&1 || { cat "$tmp/dpkg-r.log"; fail "dpkg -r"; }
grep -qx 'name edited-by-operator' "$R/etc/npa/agent.conf" || fail "dpkg -r did not keep the edited agent.conf"
[ -e "$R/usr/bin/npa-agent" ] && fail "dpkg -r left /usr/bin/npa-agent"
dpkg_r --purge npa >"$tmp/dpkg-p.log" 2>&1 || { cat "$tmp/dpkg-p.log"; fail "dpkg --purge"; }
left=$(cd "$R" && find . -path ./var -prune -o ! -type d -print | head -5)
[ -z "$left" ] || fail "left after purge: $left"
left=$(cd "$R" && find . -path ./var -prune -o -type d ! -name . -print | head -5)
[ -z "$left" ] || fail "directories left after purge: $left"
[ -z "$(dpkg-query --root="$R" -W -f='${Status}' npa 2>/dev/null | grep -v not-installed)" ] ||
  fail "npa is still known to the scratch root's dpkg"
echo "PASS: the .deb installs into a scratch root, its unit verifies and starts the agent (READY=1), and it removes cleanly"
