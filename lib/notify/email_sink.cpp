#include "notify/email_sink.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

namespace keyrot::notify {
namespace {

error config_error(const std::string& sink, std::string m) {
    error e;
    e.what = error::kind::config;
    e.message = "notify email " + sink + ": " + std::move(m);
    return e;
}

// A whole file, or nullopt.
std::optional<std::string> slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) return std::nullopt;
    return ss.str();
}

// What the worker thread needs: copies only, nothing shared with the io thread.
struct smtp_job {
    std::string url;
    smtp_tls tls = smtp_tls::starttls;
    std::string ca_file;
    std::string username;
    secret password;
    std::string from;  // bare address
    std::vector<std::string> recipients;
    std::string message;
    milliseconds timeout = 30 * k_second;
};

struct smtp_result {
    bool sent = false;
    long reply = 0;
    bool transaction = false;  // failed at MAIL, RCPT or DATA
    std::string error;         // libcurl's words; never the password or the message
};

struct upload {
    const std::string* data;
    std::size_t pos = 0;
};

std::size_t read_cb(char* buf, std::size_t size, std::size_t n, void* user) {
    auto* u = static_cast<upload*>(user);
    const std::size_t room = size * n;
    const std::size_t left = u->data->size() - u->pos;
    const std::size_t take = std::min(room, left);
    std::memcpy(buf, u->data->data() + u->pos, take);
    u->pos += take;
    return take;
}

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Blocking: runs on the sink's worker thread.
smtp_result send_smtp(const smtp_job& job) {
    smtp_result r;
    CURL* c = curl_easy_init();
    if (c == nullptr) {
        r.error = "cannot start libcurl";
        return r;
    }
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_slist* rcpt = nullptr;
    for (const auto& a : job.recipients) rcpt = curl_slist_append(rcpt, ("<" + a + ">").c_str());
    upload up{&job.message};
    curl_easy_setopt(c, CURLOPT_URL, job.url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_USE_SSL,
                     job.tls == smtp_tls::none ? static_cast<long>(CURLUSESSL_NONE)
                                               : static_cast<long>(CURLUSESSL_ALL));
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!job.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, job.ca_file.c_str());
    curl_easy_setopt(c, CURLOPT_PROXY, "");  // never through an environment proxy
    if (!job.username.empty()) {
        curl_easy_setopt(c, CURLOPT_USERNAME, job.username.c_str());
        curl_easy_setopt(c, CURLOPT_PASSWORD, job.password.reveal().c_str());
    }
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, ("<" + job.from + ">").c_str());
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(c, CURLOPT_READDATA, &up);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(job.message.size()));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(job.timeout.count()));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min<milliseconds>(job.timeout, 10 * k_second).count()));
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    const CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.reply);
    r.sent = rc == CURLE_OK;
    // libcurl 7.88 reports a refused MAIL FROM ("MAIL failed: …"), RCPT TO or
    // DATA as a send error,
    // and a refusal after the data as a weird reply; the rest (connect, TLS,
    // STARTTLS denied, AUTH) have codes of their own.
    // A refused MAIL FROM is about the sender keyrotd is configured with (or
    // authentication), not about this mail: retried like a connection failure.
    r.transaction = (rc == CURLE_SEND_ERROR || rc == CURLE_WEIRD_SERVER_REPLY) &&
                    std::string_view(errbuf).rfind("MAIL", 0) != 0;
    if (!r.sent) r.error = errbuf[0] != '\0' ? std::string(errbuf) : curl_easy_strerror(rc);
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(c);
    return r;
}

// Runs send_smtp on `pool` and completes on the handler's own executor (the
// io_context), keeping it busy meanwhile.
template <typename Token>
auto async_send(net::thread_pool& pool, smtp_job job, Token&& token) {
    return net::async_initiate<Token, void(smtp_result)>(
        [&pool](auto handler, smtp_job j) {
            auto home = net::prefer(net::get_associated_executor(handler),
                                    net::execution::outstanding_work.tracked);
            net::post(pool, [handler = std::move(handler), home = std::move(home),
                             j = std::move(j)]() mutable {
                smtp_result r = send_smtp(j);
                net::post(home, [handler = std::move(handler), r = std::move(r)]() mutable {
                    handler(std::move(r));
                });
            });
        },
        token, std::move(job));
}

bool developer_gets_it(const email_config& c, const std::string& developer,
                       const std::string& status) {
    return c.to_developer && !developer.empty() && status == "active" &&
           mailbox_address(developer) == developer;
}

}  // namespace

outcome classify_smtp(bool sent, long reply, bool transaction) {
    if (sent) return outcome::delivered;
    // 530, 534, 535, 538: authentication is missing or wrong: the operator's
    // to fix, not this mail's fault.
    const bool auth = reply == 530 || reply == 534 || reply == 535 || reply == 538;
    if (transaction && reply >= 500 && reply <= 599 && !auth) return outcome::refuse;
    return outcome::retry;
}

std::vector<std::string> email_recipients(const email_config& c, const email_values& v) {
    std::vector<std::string> out;
    const auto dev = v.find("developer");
    const auto st = v.find("developerStatus");
    if (dev != v.end() && st != v.end() && developer_gets_it(c, dev->second, st->second))
        out.push_back(dev->second);
    for (const auto& a : c.to)
        if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
    return out;
}

result<email_envelope> build_email(const email_config& c, const email_template& t,
                                   const std::string& id, std::string_view body) {
    auto facts = email_facts(body, c.portal_url);
    if (!facts) return facts.err();
    email_envelope env;
    env.recipients = email_recipients(c, facts.value());
    if (env.recipients.empty())
        return error{error::kind::config, 0, "", "no recipient for this event"};
    const bool to_dev =
        facts->count("developer") && env.recipients.front() == facts->at("developer");
    // The developer sees only their own address; fixed addresses then get it
    // as blind copies (envelope only).
    if (to_dev)
        env.message.to = {env.recipients.front()};
    else
        env.message.to = env.recipients;
    env.message.from = c.from;
    env.message.subject = render_template(t.subject, facts.value());
    env.message.body = render_template(t.body, facts.value());
    env.message.message_id = id + "@keyrotd";
    env.message.extra_headers = {{"X-Keyrotd-Event", facts->at("type")},
                                 {"X-Keyrotd-Event-Id", id}};
    return env;
}

result<std::unique_ptr<email_sink>> email_sink::create(const net::any_io_executor& ex,
                                                       const email_config& c,
                                                       std::function<sys_ms()> clock) {
    (void)ex;  // the worker hands results back to each deliver()'s own executor
    if (c.tls == smtp_tls::none && !c.host_is_loopback)
        return config_error(c.name, "plain SMTP is allowed only to a loopback host");
    std::unique_ptr<email_sink> s(new email_sink());
    s->config_ = c;
    s->template_ = default_email_template();
    if (!c.password_file.empty()) {
        auto pw = slurp(c.password_file);
        if (!pw)
            return config_error(c.name, "cannot read passwordFile " + c.password_file.string());
        std::string text = std::move(*pw);
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
        if (text.empty() || text.find_first_of("\r\n") != std::string::npos) {
            cleanse(text);
            return config_error(c.name,
                                "passwordFile " + c.password_file.string() + " must hold one line");
        }
        s->password_ = secret(std::move(text));
    }
    for (const auto& [file, into] :
         {std::pair{&c.subject_file, &s->template_.subject}, {&c.body_file, &s->template_.body}}) {
        if (file->empty()) continue;
        auto text = slurp(*file);
        if (!text) return config_error(c.name, "cannot read " + file->string());
        if (auto why = template_error(*text))
            return config_error(c.name, file->string() + ": " + *why);
        *into = std::move(*text);
    }
    // A subject is one line: a trailing newline in the file is not part of it.
    while (!s->template_.subject.empty() &&
           (s->template_.subject.back() == '\n' || s->template_.subject.back() == '\r'))
        s->template_.subject.pop_back();
    if (c.ca_file.size() && !slurp(c.ca_file))
        return config_error(c.name, "cannot read caFile " + c.ca_file);
    s->clock_ = clock ? std::move(clock) : system_now;
    global_init();
    s->worker_ = std::make_unique<net::thread_pool>(1);
    return s;
}

email_sink::~email_sink() {
    if (worker_) worker_->join();
}

bool email_sink::wants(const event& e) const {
    if (!matches(config_.filter, e)) return false;
    return !config_.to.empty() || developer_gets_it(config_, e.f.developer, e.f.developer_status);
}

net::awaitable<attempt_result> email_sink::deliver(std::string id, std::string body) {
    attempt_result out;
    auto env = build_email(config_, template_, id, body);
    if (!env) {
        // Nothing anyone could send again: an event with no recipient (a
        // developer no longer eligible) or a body that is not an event.
        out.verdict = outcome::refuse;
        out.error = "email " + config_.name + ": " + env.err().message;
        co_return out;
    }
    smtp_job job;
    job.url = config_.url;
    if (job.url.ends_with("/")) job.url.pop_back();
    job.tls = config_.tls;
    job.ca_file = config_.ca_file;
    job.username = config_.username;
    job.password = password_;
    job.from = mailbox_address(config_.from);
    job.recipients = env->recipients;
    job.message = compose_message(env->message, clock_());
    job.timeout = config_.timeout;
    // One transaction for everyone, unless the server refuses it: then the
    // fixed addresses alone, so that a developer address the server refuses
    // (a bounce) does not cost them their copy.
    std::vector<std::string> fixed;
    for (const auto& a : env->recipients)
        if (std::find(config_.to.begin(), config_.to.end(), a) != config_.to.end())
            fixed.push_back(a);
    smtp_job again = job;
    smtp_result r = co_await async_send(*worker_, std::move(job), net::use_awaitable);

    out.verdict = classify_smtp(r.sent, r.reply, r.transaction);
    out.status = r.sent ? 250 : static_cast<int>(r.reply);
    if (!r.sent) {
        out.error = "email " + config_.name + ": " + r.error;
        if (r.reply > 0) out.error += " (SMTP " + std::to_string(r.reply) + ")";
    }
    if (out.verdict == outcome::refuse && !fixed.empty() &&
        fixed.size() < again.recipients.size()) {
        again.recipients = fixed;
        smtp_result f = co_await async_send(*worker_, std::move(again), net::use_awaitable);
        const outcome second = classify_smtp(f.sent, f.reply, f.transaction);
        if (second == outcome::delivered) {
            out.error += "; sent to the fixed addresses alone";  // still counted refused
        } else if (second == outcome::retry) {
            // They must get it: the whole event is tried again later.
            out.verdict = outcome::retry;
            out.error += "; the fixed addresses alone failed too: " + f.error;
        } else {
            out.error += "; the fixed addresses alone were refused too";
        }
    }
    co_return out;
}

}  // namespace keyrot::notify
