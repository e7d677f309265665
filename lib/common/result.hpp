// result<T>: a value or an error, for failures that are expected at run time
// (network, bad API data). Bugs throw; expected failures return one of these.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace keyrot {

struct error {
    enum class kind {
        network,   // connect/reset/TLS/timeouts: the request may or may not have taken effect
        http,      // the server answered with an error status (see `status`)
        protocol,  // the answer could not be understood (bad JSON, wrong types)
        config,    // refused before sending (e.g. http:// to a non-loopback host)
        auth,      // no token could be had
        internal,
    };
    kind what = kind::internal;
    int status = 0;       // HTTP status when what == http
    std::string code;     // Google status string: "NOT_FOUND", "ALREADY_EXISTS", …
    std::string message;  // never contains a secret
    bool timed_out = false;

    bool is_status(int s) const { return what == kind::http && status == s; }
    std::string describe() const;
};

template <typename T>
class [[nodiscard]] result {
  public:
    result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
    result(error e) : v_(std::in_place_index<1>, std::move(e)) {}      // NOLINT

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() & {
        assert(ok());
        return std::get<0>(v_);
    }
    const T& value() const& {
        assert(ok());
        return std::get<0>(v_);
    }
    T&& value() && {
        assert(ok());
        return std::get<0>(std::move(v_));
    }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const error& err() const {
        assert(!ok());
        return std::get<1>(v_);
    }

  private:
    std::variant<T, error> v_;
};

struct ok_t {};
template <>
class [[nodiscard]] result<void> {
  public:
    result() = default;
    result(ok_t) {}                                    // NOLINT
    result(error e) : e_(std::move(e)), ok_(false) {}  // NOLINT
    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const error& err() const {
        assert(!ok_);
        return e_;
    }

  private:
    error e_;
    bool ok_ = true;
};

inline std::string error::describe() const {
    std::string out;
    switch (what) {
        case kind::network:
            out = timed_out ? "timeout" : "network error";
            break;
        case kind::http:
            out = "HTTP " + std::to_string(status) + (code.empty() ? "" : " " + code);
            break;
        case kind::protocol:
            out = "bad response";
            break;
        case kind::config:
            out = "configuration error";
            break;
        case kind::auth:
            out = "authentication error";
            break;
        case kind::internal:
            out = "internal error";
            break;
    }
    if (!message.empty()) out += ": " + message;
    return out;
}

}  // namespace keyrot
