// The executor's import part: keys/create with a consumer key and secret
// keyrotd chose, and the read-back that tells whether a lost answer hid a
// success (docs/rotation.md). The steps around it are in make.cpp.
#include "apigee/api.hpp"
#include "common/fingerprint.hpp"
#include "exec/executor.hpp"
#include "exec/executor_detail.hpp"

namespace keyrot::exec {

using namespace detail;

// keys/create; when the answer may hide a success (lost, or 409: the key
// exists), the key read back instead of creating another. The key made is
// named by `nk`'s consumer key and its fingerprint.
net::awaitable<executor::create_outcome> executor::create_or_read_back(apigee::app_owner owner,
                                                                       std::string name,
                                                                       const apigee::new_key& nk) {
    create_outcome out;
    auto created = co_await api_.create_key(owner, name, nk);
    if (created) {
        out.key = std::move(created.value());
    } else if (!maybe_applied(created.err()) && !created.err().is_status(409)) {
        out.absent = true;
        out.error = "create key: " + created.err().describe();
        co_return out;
    } else {
        auto back = co_await api_.get_key(owner, name, nk.consumer_key);
        if (!back) {
            out.absent = back.err().is_status(404);
            out.error = "create key: " + created.err().describe() +
                        (out.absent ? "; not created (the read-back finds no such key)"
                                    : "; read-back failed too: " + back.err().describe()) +
                        ", the next pass starts over";
            co_return out;
        }
        out.key = std::move(back.value());
    }
    out.key->fingerprint = fingerprint(nk.consumer_key);
    out.key->consumer_key = nk.consumer_key;
    co_return out;
}

}  // namespace keyrot::exec
