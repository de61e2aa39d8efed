#!/usr/bin/env bash
# conform_cli: npa-conform's command line as a vendor meets it.
# Usage: run_cli_test.sh NPA_CONFORM TEST_PLUGIN_ROOT VERSION
#   --help: exit 0, a man page (NAME first, EXIT STATUS present) on stdout
#   --version: "npa-conform VERSION", exit 0
#   bad arguments: exit 2 with a message naming what was wrong
#   --abi-only: the good test plug-in exits 0 with 7 PASS lines; a broken
#   one exits 1 naming the defect; --json is one parseable object.
set -u
bin=$1; root=$2; ver=$3
tmp=$(mktemp -d /tmp/npa-conform-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
run() { "$bin" "$@" >"$tmp/out" 2>"$tmp/err"; echo $?; }

[ "$(run --help)" = 0 ] || fail "--help did not exit 0"
head -1 "$tmp/out" | grep -qx NAME || fail "--help does not start with NAME"
for h in SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" EXAMPLES; do
  grep -qx "$h" "$tmp/out" || fail "--help has no $h section"
done
[ "$(run --version)" = 0 ] || fail "--version did not exit 0"
[ "$(cat "$tmp/out")" = "npa-conform $ver" ] || fail "--version printed '$(cat "$tmp/out")'"

check_usage() {  # check_usage 'EXPECTED MESSAGE' ARGS...
  local want=$1; shift
  [ "$(run "$@")" = 2 ] || fail "'$*' did not exit 2"
  grep -qF -e "$want" "$tmp/err" || fail "'$*' said '$(head -1 "$tmp/err")', not '$want'"
}
check_usage "unknown option '--bogus'" --bogus x.so 0000:00:01.0
check_usage "--loops 'x' is not a count" --loops x x.so 0000:00:01.0
check_usage "--abi-only needs PLUGIN.so" --abi-only
check_usage "--abi-only takes one PLUGIN.so" --abi-only a.so 0000:00:01.0
check_usage "--json is for --abi-only" --json a.so 0000:00:01.0
check_usage "give PLUGIN.so and PCI-ADDRESS" a.so

good=$root/good/libtest_good.so
[ "$(run --abi-only "$good")" = 0 ] || { cat "$tmp/out" "$tmp/err"; fail "--abi-only on $good did not exit 0"; }
[ "$(grep -c '^CONFORM [a-z_]* PASS ' "$tmp/out")" = 7 ] || { cat "$tmp/out"; fail "not 7 PASS lines"; }
tail -1 "$tmp/out" | grep -qx '7 passed, 0 failed, 0 skipped' || fail "summary: $(tail -1 "$tmp/out")"

broken=$root/broken/libbroken_null_tx.so
[ "$(run --abi-only "$broken")" = 1 ] || fail "--abi-only on $broken did not exit 1"
grep -q "^CONFORM child_load FAIL .*'tx_burst' is NULL" "$tmp/out" || { cat "$tmp/out"; fail "the defect is not named"; }

[ "$(run --abi-only --json "$good")" = 0 ] || fail "--abi-only --json did not exit 0"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["passed"]==7 and d["failed"]==0 and len(d["checks"])==7, d' "$tmp/out" ||
  fail "--json: $(cat "$tmp/out")"
[ "$(run --abi-only --json "$broken")" = 1 ] || fail "--abi-only --json on broken did not exit 1"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["failed"]==1 and d["checks"][-1]["result"]=="fail", d' "$tmp/out" ||
  fail "--json (broken): $(cat "$tmp/out")"
echo "PASS: npa-conform --help/--version/usage errors/--abi-only (text and JSON)"
