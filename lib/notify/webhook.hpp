// Standard Webhooks signing (https://www.standardwebhooks.com/, spec 1.0.0).
//
// Contract:
// - The signed content is "{webhook-id}.{webhook-timestamp}.{body}", the
//   timestamp in unix seconds. `webhook-signature` is a space-separated list:
//   "v1,<base64 HMAC-SHA256>" for each symmetric secret, then "v1a,<base64
//   Ed25519>" for each Ed25519 key. Several secrets at once (one being rotated
//   in, one out) give several signatures; a receiver accepts any that verifies.
// - Symmetric secrets are in the spec's form "whsec_<base64>" (the prefix may be
//   left out), 24 to 512 decoded bytes. Ed25519 private keys are PEM (PKCS#8,
//   as `openssl genpkey -algorithm ed25519` writes them).
// - Key material is read from files only (systemd credentials, Kubernetes
//   Secret mounts), one secret per file, surrounding whitespace ignored. It is
//   held in keyrot::secret / an EVP_PKEY and never appears in an error message:
//   errors name the file and what is wrong, never its content.
// - A signer is immutable after loading; signing does no I/O.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.hpp"
#include "common/secret.hpp"

namespace keyrot::notify {

class signer {
  public:
    // Reads every file; any unreadable or malformed file is an error (kind config).
    static result<signer> load(const std::vector<std::filesystem::path>& whsec_files,
                               const std::vector<std::filesystem::path>& ed25519_pem_files);
    // The same from values already read (tests, or callers with their own source).
    static result<signer> from_secrets(const std::vector<secret>& whsec,
                                       const std::vector<secret>& ed25519_pem);

    // "v1,… v1,… v1a,…"; empty when the signer has no key.
    std::string signature_header(std::string_view id, std::int64_t timestamp_s,
                                 std::string_view body) const;

    std::size_t symmetric_count() const { return hmac_keys_.size(); }
    std::size_t asymmetric_count() const { return ed25519_keys_.size(); }
    bool empty() const { return hmac_keys_.empty() && ed25519_keys_.empty(); }

  private:
    std::vector<secret> hmac_keys_;                    // decoded key bytes
    std::vector<std::shared_ptr<void>> ed25519_keys_;  // EVP_PKEY*, freed by the deleter
};

// The three Standard Webhooks headers for one attempt.
std::vector<std::pair<std::string, std::string>> webhook_headers(const signer& s,
                                                                 std::string_view id,
                                                                 std::int64_t timestamp_s,
                                                                 std::string_view body);

// "whsec_<base64>" (or bare base64) -> the key bytes; error (config) when
// malformed or outside 24..512 bytes. The message never holds the text.
result<secret> decode_whsec(const secret& text);

// Standard base64 with padding.
std::string base64_encode(std::string_view bytes);

}  // namespace keyrot::notify
