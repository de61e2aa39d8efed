#include "tests/support/test_certs.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>

#include <filesystem>

#include "absl/strings/str_cat.h"

namespace npa::testing {
namespace {

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* c) const { X509_free(c); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

absl::Status SslFail(const std::string& what) {
  char buf[256] = "no OpenSSL error";
  const unsigned long e = ERR_get_error();
  if (e) ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return absl::InternalError(absl::StrCat("test PKI: ", what, ": ", buf));
}

absl::StatusOr<Key> NewKey() {
  Key k(EVP_EC_gen("P-256"));
  if (!k) return SslFail("EC P-256 key");
  return k;
}

bool AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// A v3 certificate for `key` with CN=cn, signed by issuer_key (issuer ==
// nullptr: self-signed). is_ca: basicConstraints CA:TRUE.
absl::StatusOr<Cert> MakeCert(const std::string& cn, EVP_PKEY* key, X509* issuer,
                              EVP_PKEY* issuer_key, bool is_ca, int serial, int valid_days) {
  Cert c(X509_new());
  if (!c) return SslFail("X509_new");
  X509_set_version(c.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c.get()), serial);
  if (valid_days >= 0) {
    X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(c.get()), 86400L * valid_days);
  } else {
    X509_gmtime_adj(X509_getm_notBefore(c.get()), 86400L * (valid_days - 1));
    X509_gmtime_adj(X509_getm_notAfter(c.get()), 86400L * valid_days);
  }
  X509_set_pubkey(c.get(), key);
  X509_NAME* name = X509_get_subject_name(c.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("npa tests"),
                             -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()),
                             -1, -1, 0);
  X509* iss = issuer ? issuer : c.get();
  X509_set_issuer_name(c.get(), X509_get_subject_name(iss));
  const bool ok =
      AddExt(c.get(), iss, NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE") &&
      AddExt(c.get(), iss, NID_key_usage,
             is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature") &&
      AddExt(c.get(), iss, NID_subject_key_identifier, "hash") &&
      (is_ca || AddExt(c.get(), iss, NID_ext_key_usage, "serverAuth,clientAuth")) &&
      AddExt(c.get(), iss, NID_authority_key_identifier, "keyid:always");
  if (!ok) return SslFail(absl::StrCat("extensions of ", cn));
  if (X509_sign(c.get(), issuer_key ? issuer_key : key, EVP_sha256()) <= 0)
    return SslFail(absl::StrCat("signing ", cn));
  return c;
}

absl::Status WriteCert(const std::string& path, X509* c) {
  FILE* f = fopen(path.c_str(), "w");
  if (!f) return absl::InternalError(absl::StrCat("test PKI: cannot write ", path));
  const bool ok = PEM_write_X509(f, c) == 1;
  fclose(f);
  return ok ? absl::OkStatus() : SslFail(absl::StrCat("PEM ", path));
}

absl::Status WriteKey(const std::string& path, EVP_PKEY* k) {
  FILE* f = fopen(path.c_str(), "w");
  if (!f) return absl::InternalError(absl::StrCat("test PKI: cannot write ", path));
  const bool ok = PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  fclose(f);
  return ok ? absl::OkStatus() : SslFail(absl::StrCat("PEM ", path));
}

}  // namespace

struct TestPki::Impl {
  Key ca_key;
  Cert ca_cert;
};

absl::StatusOr<std::unique_ptr<TestPki>> TestPki::Create() {
  const char* tmp = getenv("TMPDIR");
  std::string tmpl = absl::StrCat(tmp && *tmp ? tmp : "/tmp", "/npa-pki-XXXXXX");
  if (!mkdtemp(tmpl.data())) return absl::InternalError(absl::StrCat("test PKI: mkdtemp ", tmpl));
  std::unique_ptr<TestPki> p(new TestPki());
  p->dir_ = tmpl;
  p->impl_ = std::make_unique<Impl>();
  auto key = NewKey();
  if (!key.ok()) return key.status();
  p->impl_->ca_key = std::move(*key);
  auto cert = MakeCert("npa test CA", p->impl_->ca_key.get(), nullptr, nullptr, true, p->serial_++, 1);
  if (!cert.ok()) return cert.status();
  p->impl_->ca_cert = std::move(*cert);
  p->ca_file_ = p->dir_ + "/ca.pem";
  absl::Status s = WriteCert(p->ca_file_, p->impl_->ca_cert.get());
  if (!s.ok()) return s;
  return p;
}

TestPki::~TestPki() {
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

absl::StatusOr<CertPaths> TestPki::Issue(const std::string& cn, int valid_days) {
  auto key = NewKey();
  if (!key.ok()) return key.status();
  auto cert = MakeCert(cn, key->get(), impl_->ca_cert.get(), impl_->ca_key.get(), false, serial_++,
                       valid_days);
  if (!cert.ok()) return cert.status();
  const std::string base = absl::StrCat(dir_, "/", cn, "-", serial_);
  CertPaths out{base + ".crt", base + ".key"};
  absl::Status s = WriteCert(out.cert_file, cert->get());
  if (s.ok()) s = WriteKey(out.key_file, key->get());
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<CertPaths> TestPki::SelfSigned(const std::string& cn) {
  auto key = NewKey();
  if (!key.ok()) return key.status();
  auto cert = MakeCert(cn, key->get(), nullptr, nullptr, false, serial_++, 1);
  if (!cert.ok()) return cert.status();
  const std::string base = absl::StrCat(dir_, "/", cn, "-self-", serial_);
  CertPaths out{base + ".crt", base + ".key"};
  absl::Status s = WriteCert(out.cert_file, cert->get());
  if (s.ok()) s = WriteKey(out.key_file, key->get());
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::string> TestPki::OtherCaFile() {
  auto key = NewKey();
  if (!key.ok()) return key.status();
  auto cert = MakeCert("some other CA", key->get(), nullptr, nullptr, true, serial_++, 1);
  if (!cert.ok()) return cert.status();
  const std::string path = absl::StrCat(dir_, "/other-ca-", serial_, ".pem");
  absl::Status s = WriteCert(path, cert->get());
  if (!s.ok()) return s;
  return path;
}

}  // namespace npa::testing
