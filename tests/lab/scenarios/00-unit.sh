# unit: the VF library's unit tests (fake sysfs) run inside the guest too:
# proves the shared dynamically linked binaries and their libraries work there.
/lab/bin/npa_vf_test --gtest_brief=1 >/tmp/unit.out 2>&1; rc=$?
tail -n 5 /tmp/unit.out
[ $rc = 0 ] || fail "npa_vf_test: $(grep -m1 FAILED /tmp/unit.out)"
detail "npa_vf_test: $(grep -o '[0-9]* tests\? from [0-9]* test suites\? ran' /tmp/unit.out | head -1), all passed"
