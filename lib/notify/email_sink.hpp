// A sink that mails each event (docs/notifications.md, "Email") through
// libcurl's SMTP client.
//
// Contract:
// - Recipients: the event's developer when toDeveloper is set and the event
//   says the developer is active (developerStatus "active"; never an inactive
//   or unknown one, never a team), plus the fixed `to` addresses (envelope
//   only when the developer is the To: header, so partners never see them).
//   wants() refuses an event that would have no recipient, so it is not even
//   stored for this sink.
// - One attempt per deliver(), one SMTP transaction for all recipients. The
//   blocking libcurl call runs on the sink's own worker thread, never on the
//   io_context's: a slow mail server cannot slow a rotation. deliver() resumes
//   on the io_context's executor.
// - TLS: smtp:// requires STARTTLS (CURLUSESSL_ALL: a server without it is
//   refused, nothing is sent in clear), smtps:// is TLS from the start, plain
//   SMTP only with tls: none to a loopback host (config.hpp). Peer and host
//   are verified; caFile as CURLOPT_CAINFO. No proxy.
// - Outcome (classify_smtp): sent -> delivered; a 5xx reply to RCPT or DATA
//   (a refusal, e.g. 550 no such user, 554 rejected) -> refused for good,
//   counted and never retried; anything else (4xx, no connection, TLS or AUTH
//   failure, 530 authentication required, a refused MAIL FROM, timeout) ->
//   retried on the outbox's schedule until maxAge.
// - The SMTP password is read from passwordFile by create() (start-up errors
//   are fatal config errors naming the file, never its content); it is held
//   in a `secret` and given to libcurl only. Error texts name the sink and the
//   SMTP reply code, never the password or a message body.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/asio.hpp"
#include "common/result.hpp"
#include "common/secret.hpp"
#include "notify/config.hpp"
#include "notify/dispatcher.hpp"
#include "notify/email.hpp"

namespace keyrot::notify {

// The pure rule above. `sent`: libcurl finished the transaction; `reply`: the
// last SMTP reply code (0: none); `transaction`: the failure came at RCPT or
// DATA (not at connect, TLS, AUTH or MAIL FROM).
outcome classify_smtp(bool sent, long reply, bool transaction);

// Who gets the mail for an event with these template values (email.hpp).
std::vector<std::string> email_recipients(const email_config& c, const email_values& v);

// The message a sink sends for an event body: recipients, headers, rendered
// subject and body. Error when the body is not an event or has no recipient.
struct email_envelope {
    std::vector<std::string> recipients;  // envelope (RCPT TO)
    email_message message;
};
result<email_envelope> build_email(const email_config& c, const email_template& t,
                                   const std::string& id, std::string_view body);

class email_sink final : public sink {
  public:
    // Reads passwordFile and the template files. `clock`: for Date:.
    static result<std::unique_ptr<email_sink>> create(const net::any_io_executor& ex,
                                                      const email_config& c,
                                                      std::function<sys_ms()> clock = {});
    ~email_sink() override;

    const std::string& name() const override { return config_.name; }
    const sink_filter& filter() const override { return config_.filter; }
    bool wants(const event& e) const override;
    net::awaitable<attempt_result> deliver(std::string id, std::string body) override;

  private:
    email_sink() = default;
    email_config config_;
    email_template template_;
    secret password_;
    std::function<sys_ms()> clock_;
    std::unique_ptr<net::thread_pool> worker_;  // one thread: libcurl's blocking calls
};

}  // namespace keyrot::notify
