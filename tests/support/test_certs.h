// tests/support/test_certs.h — a throw-away PKI for TLS tests: a CA, leaf
// certificates it signs, and self-signed ones it does not (an untrusted
// peer), written as PEM files into a fresh temporary directory that the
// destructor removes. Made with the OpenSSL 3 API (EC P-256 keys, SHA-256,
// X.509 v3), so tests need no openssl binary and no files in the tree.
//
//   auto pki = npa::testing::TestPki::Create();         // ASSERT_TRUE(pki.ok())
//   auto a = (*pki)->Issue("agent-a");                  // signed by the CA
//   auto evil = (*pki)->SelfSigned("mallory");          // not signed by it
//   TlsConfig cfg{a->cert_file, a->key_file, (*pki)->ca_file()};
//
// Certificates are valid from one hour ago to one day ahead (clock skew
// between the test and OpenSSL's check does not matter); Issue(cn, -1)
// gives one that expired yesterday. Not thread-safe; one test owns a TestPki.
#ifndef NPA_TESTS_SUPPORT_TEST_CERTS_H_
#define NPA_TESTS_SUPPORT_TEST_CERTS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace npa::testing {

struct CertPaths {
  std::string cert_file, key_file;  // PEM
};

class TestPki {
 public:
  // mkdtemp under $TMPDIR (or /tmp), then the CA ("npa test CA").
  static absl::StatusOr<std::unique_ptr<TestPki>> Create();
  ~TestPki();  // removes the directory and every file in it
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& ca_file() const { return ca_file_; }

  // A certificate with subject CN=cn, signed by this CA. valid_days < 0: it
  // expired that many days ago.
  absl::StatusOr<CertPaths> Issue(const std::string& cn, int valid_days = 1);
  // A self-signed certificate with CN=cn: no CA here vouches for it.
  absl::StatusOr<CertPaths> SelfSigned(const std::string& cn);
  // A second, unrelated CA's file (for "trusts another CA" cases).
  absl::StatusOr<std::string> OtherCaFile();

 private:
  TestPki() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string dir_, ca_file_;
  int serial_ = 1;
};

}  // namespace npa::testing

#endif  // NPA_TESTS_SUPPORT_TEST_CERTS_H_
