// A secret holds key material (consumer keys and secrets, tokens, private keys).
//
// It never prints itself: operator<< and fmt print "***". Its destructor wipes
// the buffer with OPENSSL_cleanse. Read the value only at the edge where it is
// sent on the wire, through reveal().
#pragma once

#include <fmt/format.h>

#include <ostream>
#include <string>
#include <string_view>

namespace keyrot {

class secret {
  public:
    secret() = default;
    explicit secret(std::string value) : value_(std::move(value)) {}
    secret(const secret& other) = default;
    secret(secret&& other) noexcept;
    secret& operator=(const secret& other);
    secret& operator=(secret&& other) noexcept;
    ~secret();

    const std::string& reveal() const { return value_; }
    bool empty() const { return value_.empty(); }
    void clear();

    friend bool operator==(const secret& a, const secret& b) { return a.value_ == b.value_; }

  private:
    std::string value_;
};

inline std::ostream& operator<<(std::ostream& os, const secret&) { return os << "***"; }

// Wipes any string that held secret material.
void cleanse(std::string& s);

// Trims the ASCII white space around `s` in place; the untrimmed buffer is wiped.
void trim_secret(std::string& s);

// A token file's content without the white space around it ("" when it
// cannot be read); the buffers it passed through are wiped.
std::string read_secret_file(const std::string& path);

}  // namespace keyrot

template <>
struct fmt::formatter<keyrot::secret> : fmt::formatter<std::string_view> {
    template <typename Ctx>
    auto format(const keyrot::secret&, Ctx& ctx) const {
        return fmt::formatter<std::string_view>::format("***", ctx);
    }
};
