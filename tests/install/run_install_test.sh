#!/usr/bin/env bash
# install_sdk: install the build into a scratch root (DESTDIR), check what a
# driver writer and a vendor get (headers, libnpa_shell with its SONAME and
# only npa_* exported, find_package(npa), pkg-config npa-shell/npa-plugin,
# the plug-ins in the shell's plug-in directory, the binaries, the man
# pages, the unit and its configuration), build examples/guest-driver both
# ways and run it against the installed npa-agent: every frame it sends is
# counted by the agent (npactl --json); build examples/vendor-plugin both
# ways and pass it through the installed npa-conform --abi-only, and a
# deliberately broken build of it (tx_burst left NULL) must fail there.
# Usage: run_install_test.sh BUILD_DIR SOURCE_DIR. Cleans up what it made.
set -u
B=$1; S=$2
tmp=$(mktemp -d /tmp/npa-install.XXXXXX)
apid=
cleanup() {
  [ -n "$apid" ] && { kill "$apid" 2>/dev/null; wait "$apid" 2>/dev/null; }
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
step() { echo "--- $*"; }

step "cmake --install into $tmp/root"
DESTDIR=$tmp/root cmake --install "$B" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "cmake --install"; }
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$B/CMakeCache.txt")
R=$tmp/root$prefix
libdir=$(ls -d "$R"/lib* | head -1)
for f in include/npa/shell.h include/npa/plugin.h include/npa/plugin_services.h include/npa/buf.h \
         bin/npa-agent bin/npactl \
         bin/npa-conform share/man/man8/npa-agent.8 share/man/man8/npactl.8 \
         share/man/man8/npa-conform.8 lib/systemd/system/npa-agent.service; do
  [ -e "$R/$f" ] || fail "$f is not installed"
done
# /etc for the prefix /usr, PREFIX/etc otherwise (GNUInstallDirs' rule).
etc=$R/etc; [ "$prefix" = /usr ] && etc=$tmp/root/etc
[ -f "$etc/npa/agent.conf" ] || fail "agent.conf is not in ${etc#$tmp/root}/npa"
grep -qx "ExecStart=$prefix/bin/npa-agent --config ${etc#$tmp/root}/npa/agent.conf" "$R/lib/systemd/system/npa-agent.service" ||
  fail "the unit's ExecStart does not name the installed agent and config: $(grep ExecStart "$R/lib/systemd/system/npa-agent.service")"
shell_so=$(ls "$libdir"/libnpa_shell.so.1.[0-9]*.0 2>/dev/null | head -1)
[ -n "$shell_so" ] || fail "libnpa_shell.so.1.[0-9]*.0 is not installed in $libdir"
soname=$(readelf -d "$shell_so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libnpa_shell.so.1 ] || fail "SONAME is '$soname', not libnpa_shell.so.1"
other=$(nm -D --defined-only "$shell_so" | awk '$2 ~ /[TDBRW]/ {print $3}' | grep -v '^npa_' | head -5)
[ -z "$other" ] || fail "libnpa_shell exports symbols outside npa_*: $other"
# Relative (the default): under the prefix, beside libnpa_shell, where the
# installed shell looks first (docs/packaging.md, "Paths").
plugindir=$(sed -n 's/^NPA_PLUGIN_INSTALL_DIR:[A-Z]*=//p' "$B/CMakeCache.txt")
case $plugindir in
  /*) ;;
  *) plugindir=$prefix/$plugindir
     [ "$plugindir" = "${libdir#$tmp/root}/npa/plugins" ] ||
       fail "the plug-in directory $plugindir is not npa/plugins beside libnpa_shell in ${libdir#$tmp/root}" ;;
esac
for p in npa_plugin_e1000e.so npa_plugin_virtio_net.so; do
  [ -f "$tmp/root$plugindir/$p" ] || fail "$p is not in the shell's plug-in directory $plugindir"
done
echo "installed: $(cd "$tmp/root" && find . -type f | wc -l) files; SONAME $soname; plug-ins in $plugindir"

# A sanitizer build's library needs its runtime loaded first: the sample is
# built with the same sanitizers then (a driver writer's build never is).
san=
readelf -d "$shell_so" | grep -q 'libasan' && san="-fsanitize=address,undefined"

step "examples/guest-driver with find_package(npa)"
cmake -S "$S/examples/guest-driver" -B "$tmp/b-cmake" -DCMAKE_PREFIX_PATH="$R" \
  -DCMAKE_C_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="$san" >"$tmp/cmake.log" 2>&1 &&
  cmake --build "$tmp/b-cmake" >>"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; fail "the CMake build"; }

step "examples/guest-driver with pkg-config"
export PKG_CONFIG_SYSROOT_DIR=$tmp/root PKG_CONFIG_LIBDIR=$libdir/pkgconfig
flags=$(pkg-config --cflags --libs npa-shell) || fail "pkg-config npa-shell"
pkg-config --exists npa-plugin || fail "pkg-config npa-plugin"
# pkgconf puts the sysroot in front of a path variable as it does for -I.
[ "$(pkg-config --variable=plugindir npa-plugin)" = "$tmp/root$plugindir" ] ||
  fail "npa-plugin's plugindir is '$(pkg-config --variable=plugindir npa-plugin)'"
cc -O2 -Wall -Wextra -Werror $san "$S/examples/guest-driver/npa_hello.c" $flags -o "$tmp/npa_hello_pc" ||
  fail "the pkg-config build ($flags)"
echo "pkg-config: $flags"

step "examples/vendor-plugin with find_package(npa), checked by the installed npa-conform"
cmake -S "$S/examples/vendor-plugin" -B "$tmp/v-cmake" -DCMAKE_PREFIX_PATH="$R" \
  -DCMAKE_C_FLAGS="$san -Werror" -DCMAKE_CXX_FLAGS="$san -Werror" -DCMAKE_MODULE_LINKER_FLAGS="$san" \
  -DCMAKE_EXE_LINKER_FLAGS="$san" >"$tmp/vcmake.log" 2>&1 &&
  cmake --build "$tmp/v-cmake" >>"$tmp/vcmake.log" 2>&1 || { cat "$tmp/vcmake.log"; fail "the plug-in's CMake build"; }
vso=$tmp/v-cmake/npa_plugin_sample_nic.so
[ -f "$vso" ] || fail "the CMake build made no npa_plugin_sample_nic.so"
# Exported: exactly the entry (npa/plugin.h); linked: nothing of npa.
exports=$(nm -D --defined-only "$vso" | awk '$2 ~ /[TDBRW]/ {print $3}' | grep -v '^_' | sort | tr '\n' ' ')
[ "$exports" = "npa_plugin_entry " ] || fail "the sample plug-in exports '$exports', not only npa_plugin_entry"
readelf -d "$vso" | grep -q 'NEEDED.*libnpa' && fail "the sample plug-in links an npa library"
# Its own ctest: its unit test on the installed plug-in test kit, and the
# installed npa-conform's --abi-only (npa_BINDIR).
(cd "$tmp/v-cmake" && ctest --output-on-failure >"$tmp/vctest.log" 2>&1) || { cat "$tmp/vctest.log"; fail "the plug-in's ctest (npa-conform --abi-only)"; }
grep -q "100% tests passed, 0 tests failed out of 2" "$tmp/vctest.log" || { cat "$tmp/vctest.log"; fail "the plug-in's ctest did not run its 2 tests"; }

step "examples/vendor-plugin with pkg-config"
vflags=$(PKG_CONFIG_SYSROOT_DIR=$tmp/root PKG_CONFIG_LIBDIR=$libdir/pkgconfig pkg-config --cflags npa-plugin) ||
  fail "pkg-config npa-plugin"
cc -O2 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden $san $vflags \
  "$S/examples/vendor-plugin/sample_nic.c" -o "$tmp/npa_plugin_sample_nic_pc.so" || fail "the plug-in's pkg-config build ($vflags)"
"$R/bin/npa-conform" --abi-only "$tmp/npa_plugin_sample_nic_pc.so" >"$tmp/abi.out" 2>&1 ||
  { cat "$tmp/abi.out"; fail "the installed npa-conform --abi-only refused the sample plug-in"; }
cat "$tmp/abi.out"
[ "$(grep -c '^CONFORM [a-z_]* PASS' "$tmp/abi.out")" = 7 ] || fail "not 7 ABI checks passed"
"$R/bin/npa-conform" --abi-only --json "$tmp/npa_plugin_sample_nic_pc.so" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["failed"]==0 and d["passed"]==7 else 1)' ||
  fail "--abi-only --json on the sample plug-in"

step "a deliberately broken build of the sample plug-in must fail npa-conform --abi-only"
# The commonest slip: a mandatory fast-path op left out of the table.
sed '/\.tx_burst = sample_tx_burst,/d' "$S/examples/vendor-plugin/sample_nic.c" >"$tmp/broken_nic.c"
cmp -s "$tmp/broken_nic.c" "$S/examples/vendor-plugin/sample_nic.c" && fail "could not break the sample (no .tx_burst line)"
cc -O2 -Wall -Wextra -Wno-unused-function -shared -fPIC -fvisibility=hidden $san $vflags \
  "$tmp/broken_nic.c" -o "$tmp/npa_plugin_broken_nic.so" || fail "the broken build did not compile"
"$R/bin/npa-conform" --abi-only "$tmp/npa_plugin_broken_nic.so" >"$tmp/abi-broken.out" 2>&1; rc=$?
cat "$tmp/abi-broken.out"
[ $rc = 1 ] || fail "npa-conform --abi-only exited $rc on the broken plug-in, not 1"
grep -q "^CONFORM child_load FAIL .*mandatory fast-path op 'tx_burst' is NULL" "$tmp/abi-broken.out" ||
  fail "the broken plug-in's defect is not named"

step "run both against the installed npa-agent"
ctl=$tmp/agent.ctl
"$R/bin/npa-agent" --control "$ctl" --mode sink --name install-test >"$tmp/agent.log" 2>&1 &
apid=$!
for _ in $(seq 100); do [ -S "$ctl.admin" ] && break; sleep 0.05; done
[ -S "$ctl.admin" ] || { cat "$tmp/agent.log"; fail "the installed agent did not start"; }
export LD_LIBRARY_PATH=$libdir
for d in "$tmp/b-cmake/npa_hello" "$tmp/npa_hello_pc"; do
  name=hello$$_$(basename "$d" | tr -dc a-z)
  # 500 frames, then 3 s as an echo driver, meanwhile the agent is asked.
  timeout 30 "$d" "$ctl" "$name" 500 3000 >"$tmp/$name.out" 2>&1 &
  dpid=$!
  taken=
  # Bounded in count and in time: an agent that stops answering costs 30 s,
  # not 60 npactl timeouts.
  deadline=$((SECONDS + 30))
  for _ in $(seq 60); do
    [ $SECONDS -lt $deadline ] || break
    taken=$(timeout 5 "$R/bin/npactl" --socket "$ctl.admin" --json stats "$name" 2>/dev/null |
      python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(q["tx_packets"] for g in d["guests"] for q in g["queues"]))' 2>/dev/null)
    [ "$taken" = 500 ] && break
    sleep 0.05
  done
  wait $dpid; rc=$?
  cat "$tmp/$name.out"
  [ $rc = 0 ] || { tail "$tmp/agent.log"; fail "$d exited $rc"; }
  python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().splitlines()[-1]); sys.exit(0 if d["sent"]==500 and d["tx_packets"]==500 else 1)' "$tmp/$name.out" ||
    fail "$d: the shell did not count 500 frames sent"
  [ "$taken" = 500 ] || fail "the installed agent counted '$taken' frames from $name, not 500"
  echo "the agent took 500/500 frames from $name"
done
echo "PASS: installed SDK builds the sample driver both ways and it runs against the installed agent; the sample plug-in builds both ways and passes the installed npa-conform --abi-only, its broken build fails it"
