#include "attest/serve.hpp"

#include <fcntl.h>
#include <openssl/err.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "attest/net.hpp"
#include "attest/quote.hpp"
#include "tpm/tpm.hpp"
#include "base/error.hpp"
#include "base/fd.hpp"

namespace trustme::attest {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// Every TPM command of this process goes through one connection at a time: a TPM (and swtpm) serves one
// command at a time, and swtpm one client.
std::mutex g_tpm;

constexpr size_t kMaxRequest = 64 * 1024;

std::string error_line(const std::string& msg) {
    // replace: a message never makes the reply invalid, whatever bytes it quotes.
    return json{{"error", msg}}.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace

json ak_info(const cli::Settings& s) {
    std::lock_guard<std::mutex> l(g_tpm);
    tpm::Tpm t(s.tcti);
    auto ak = t.ak_public();
    return {{"ak_public", tpm::to_hex(ak.public_area)}, {"ek_cert", tpm::to_hex(t.ek_certificate())}};
}

json activate(const cli::Settings& s, const json& req) {
    auto field = [&](const char* k) {
        if (!req.contains(k) || !req[k].is_string()) fail(std::string("request: ") + k + ": missing or not a string");
        return tpm::from_hex(req[k].get<std::string>(), std::string("request: ") + k);
    };
    tpm::Credential c;
    c.credential_blob = field("credential_blob");
    c.encrypted_secret = field("encrypted_secret");
    std::lock_guard<std::mutex> l(g_tpm);
    tpm::Tpm t(s.tcti);
    auto secret = t.ak_activate_credential(c);
    return {{"secret", tpm::to_hex(secret.bytes)}};
}

namespace {

struct Job {
    uint64_t conn;
    json request;
};

struct Done {
    uint64_t conn;
    std::string head;  // a JSON line
    UniqueFd file;     // then these bytes of it
    uint64_t begin = 0, end = 0;
};

struct Conn {
    UniqueFd fd;
    tls::Ssl ssl;  // with TLS
    std::string client;
    enum class Phase { Handshake, Reading, Working, Writing } phase = Phase::Reading;
    short wait = 0;  // TLS: the direction OpenSSL waits for (a read may need a write), else the phase's
    Clock::time_point deadline;
    std::string in;
    std::string out;
    size_t out_off = 0;
    UniqueFd file;
    uint64_t file_off = 0, file_end = 0;
};

// One line on stderr (refused TLS handshakes): control characters of peer-chosen names replaced.
void log_line(std::string msg) {
    for (char& ch : msg)
        if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
    std::fprintf(stderr, "trustme-attest: serve: %s\n", msg.c_str());
}

// Non-blocking I/O on a connection, plain or TLS: > 0 bytes moved, 0 end of stream, -1 would block
// (c.wait tells which way, for TLS), -2 broken.
ssize_t io_result(Conn& c, int r) {
    switch (SSL_get_error(c.ssl.get(), r)) {
        case SSL_ERROR_WANT_READ: c.wait = POLLIN; return -1;
        case SSL_ERROR_WANT_WRITE: c.wait = POLLOUT; return -1;
        case SSL_ERROR_ZERO_RETURN: return 0;
        default: ERR_clear_error(); return -2;
    }
}

ssize_t recv_some(Conn& c, char* buf, size_t n) {
    if (c.ssl) {
        ERR_clear_error();
        int r = SSL_read(c.ssl.get(), buf, static_cast<int>(n));
        if (r > 0) c.wait = 0;
        return r > 0 ? r : io_result(c, r);
    }
    ssize_t r = ::recv(c.fd.get(), buf, n, MSG_DONTWAIT);
    if (r >= 0) return r;
    return errno == EAGAIN || errno == EINTR ? -1 : -2;
}

ssize_t send_some(Conn& c, const char* buf, size_t n) {
    if (c.ssl) {
        ERR_clear_error();
        int r = SSL_write(c.ssl.get(), buf, static_cast<int>(std::min<size_t>(n, 1 << 20)));
        if (r > 0) c.wait = 0;
        return r > 0 ? r : io_result(c, r);
    }
    ssize_t r = ::send(c.fd.get(), buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r >= 0) return r;
    return errno == EAGAIN || errno == EINTR ? -1 : -2;
}

// Parse and check a request line; Error with the reason (never the raw bytes).
json parse_request(const std::string& line, bool enroll) {
    if (line.find('\0') != std::string::npos) fail("request: contains a NUL byte");
    json req;
    try {
        req = json::parse(line);
    } catch (const json::exception&) {
        fail("request: not a JSON object");
    }
    if (!req.is_object()) fail("request: not a JSON object");
    if (!req.contains("op") || !req["op"].is_string()) fail("request: op: missing or not a string");
    std::string op = req["op"].get<std::string>();
    if (op == "quote") {
        for (const auto& [k, v] : req.items())
            if (k != "op" && k != "nonce" && k != "from" && k != "pcrs") fail("request: " + k + ": unknown field");
        if (!req.contains("nonce") || !req["nonce"].is_string()) fail("request: nonce: missing or not a string");
        if (req.contains("from") && !req["from"].is_number_unsigned()) fail("request: from: not a record number");
        if (req.contains("pcrs")) {
            const auto& p = req["pcrs"];
            if (!p.is_array() || p.empty() || p.size() > 24) fail("request: pcrs: must be an array of 1..24 PCRs");
            for (const auto& n : p)
                if (!n.is_number_unsigned() || n.get<uint64_t>() > 23) fail("request: pcrs: PCR numbers are 0..23");
        }
        return req;
    }
    if (op == "ak" || op == "activate") {
        if (!enroll) fail("request: op " + op + " is not enabled (serve --enroll)");
        return req;
    }
    fail("request: op must be quote" + std::string(enroll ? ", ak or activate" : ""));
}

class Server {
public:
    explicit Server(const ServeOptions& o) : o_(o), ak_(o.settings.log) {}

    [[noreturn]] void run() {
        lfd_ = net::listen_on(o_.listen);
        set_nonblock(lfd_.get());
        efd_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
        if (!efd_) fail_errno("eventfd");
        for (size_t i = 0; i < std::max<size_t>(1, o_.workers); ++i) std::thread([this] { work(); }).detach();
        std::printf("listening on %s\n", o_.listen.c_str());
        std::fflush(stdout);
        loop();
    }

private:
    static void set_nonblock(int fd) {
        int fl = ::fcntl(fd, F_GETFL);
        ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }

    [[noreturn]] void loop() {
        std::vector<pollfd> pfds;
        std::vector<uint64_t> ids;
        for (;;) {
            auto now = Clock::now();
            pfds.clear();
            ids.clear();
            bool listening = now >= accept_pause_until_ && conns_.size() < o_.max_connections + 64;
            pfds.push_back({listening ? lfd_.get() : -1, POLLIN, 0});
            pfds.push_back({efd_.get(), POLLIN, 0});
            auto next = now + std::chrono::seconds(60);
            if (!listening && accept_pause_until_ > now) next = std::min(next, accept_pause_until_);
            for (auto& [id, c] : conns_) {
                short ev = c.phase == Conn::Phase::Writing ? POLLOUT : c.phase == Conn::Phase::Working ? 0 : POLLIN;
                if (c.wait && c.phase != Conn::Phase::Working) ev = c.wait;
                pfds.push_back({c.fd.get(), ev, 0});
                ids.push_back(id);
                next = std::min(next, c.deadline);
            }
            int timeout =
                static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() + 1);
            int n = ::poll(pfds.data(), pfds.size(), std::max(timeout, 0));
            if (n < 0 && errno != EINTR) fail_errno("poll");
            if (n > 0) {
                if (pfds[1].revents) collect();
                for (size_t i = 0; i < ids.size(); ++i)
                    if (pfds[i + 2].revents) step(ids[i], pfds[i + 2].revents);
                if (pfds[0].revents) accept_all();
            }
            expire();
        }
    }

    void accept_all() {
        for (int i = 0; i < 64; ++i) {
            UniqueFd c(::accept4(lfd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
            if (!c) {
                int e = errno;
                if (e == EAGAIN) return;  // Linux: EWOULDBLOCK is the same value (errno(3))
                // Out of descriptors or memory: the pending connection stays queued; pause accepting
                // (poll would report it again at once) and go on serving those we have.
                if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                    accept_pause_until_ = Clock::now() + std::chrono::milliseconds(100);
                    return;
                }
                // Errors of one connection (ECONNABORTED, EPROTO, network errors passed on by accept(2)).
                if (e == EBADF || e == EINVAL || e == ENOTSOCK || e == EOPNOTSUPP) fail(e, o_.listen + ": accept");
                continue;
            }
            std::string key = net::peer_key(c.get());
            // Over TLS nothing can be said before the handshake: the connection is just closed.
            if (conns_.size() >= o_.max_connections) {
                if (!o_.tls) refuse_now(c.get(), "busy: " + std::to_string(o_.max_connections) + " connections open");
                continue;
            }
            if (per_client_[key] >= o_.max_per_client) {
                if (!o_.tls)
                    refuse_now(c.get(),
                               "busy: " + std::to_string(o_.max_per_client) + " connections open from this client");
                continue;
            }
            tls::Ssl ssl;
            if (o_.tls) {
                try {
                    ssl = o_.tls->wrap(c.get());
                } catch (const std::exception& e) {
                    log_line(std::string("TLS: ") + e.what());
                    continue;
                }
            }
            ++per_client_[key];
            Conn& conn = conns_[next_id_++];
            conn.fd = std::move(c);
            conn.ssl = std::move(ssl);
            conn.phase = conn.ssl ? Conn::Phase::Handshake : Conn::Phase::Reading;
            conn.client = key;
            conn.deadline = Clock::now() + std::chrono::seconds(o_.deadline_seconds);
        }
    }

    // Best effort, never blocking: the socket buffer of a new connection has room for a line.
    static void refuse_now(int fd, const std::string& msg) {
        std::string l = error_line(msg);
        (void)!::send(fd, l.data(), l.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    }

    void close_conn(uint64_t id) {
        auto it = conns_.find(id);
        if (it == conns_.end()) return;
        auto pc = per_client_.find(it->second.client);
        if (pc != per_client_.end() && --pc->second == 0) per_client_.erase(pc);
        conns_.erase(it);
    }

    void reply(Conn& c, std::string head) {
        c.phase = Conn::Phase::Writing;
        c.wait = 0;
        c.out = std::move(head);
        c.out_off = 0;
        if (!c.ssl) ::shutdown(c.fd.get(), SHUT_RD);  // one request per connection: nothing more is read
    }

    // The end of a reply: over TLS a close_notify first (best effort, never waited for).
    void finish(uint64_t id, Conn& c) {
        if (c.ssl) SSL_shutdown(c.ssl.get());
        close_conn(id);
    }

    void step(uint64_t id, short revents) {
        auto it = conns_.find(id);
        if (it == conns_.end()) return;
        Conn& c = it->second;
        if (c.phase == Conn::Phase::Handshake) {
            ERR_clear_error();
            int r = SSL_accept(c.ssl.get());
            if (r != 1) {
                int e = SSL_get_error(c.ssl.get(), r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                    c.wait = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
                    return;
                }
                // Wrong CA, not on the allow-list, no certificate, not TLS at all: refused, one line.
                log_line("TLS: refused " + c.client + ": " + tls::Context::failure(c.ssl.get(), r));
                return close_conn(id);
            }
            c.phase = Conn::Phase::Reading;
            c.wait = 0;
        }
        if (c.phase == Conn::Phase::Reading) {
            // Until the socket (or TLS, which may hold decrypted bytes poll cannot see) has no more.
            for (;;) {
                char buf[4096];
                ssize_t n = recv_some(c, buf, sizeof buf);
                if (n == -1) return;
                if (n == -2) return close_conn(id);
                if (n == 0) {
                    if (c.in.empty()) return close_conn(id);
                    reply(c, error_line("request: connection closed before the end of the line"));
                    break;
                }
                size_t old = c.in.size();
                c.in.append(buf, static_cast<size_t>(n));
                auto nl = c.in.find('\n', old);
                if (nl == std::string::npos) {
                    if (c.in.size() <= kMaxRequest) continue;
                    reply(c, error_line("request: larger than " + std::to_string(kMaxRequest) + " bytes"));
                    break;
                }
                c.in.resize(nl);
                try {
                    json req = parse_request(c.in, o_.enroll);
                    c.phase = Conn::Phase::Working;
                    {
                        std::lock_guard<std::mutex> l(mu_);
                        jobs_.push_back({id, std::move(req)});
                    }
                    cv_.notify_one();
                    return;
                } catch (const std::exception& e) {
                    reply(c, error_line(e.what()));
                    break;
                }
            }
        }
        if (c.phase != Conn::Phase::Writing) {
            if (revents & (POLLHUP | POLLERR)) return close_conn(id);
            return;
        }
        for (;;) {
            while (c.out_off < c.out.size()) {
                ssize_t n = send_some(c, c.out.data() + c.out_off, c.out.size() - c.out_off);
                if (n == -1) return;
                if (n <= 0) return close_conn(id);
                c.out_off += static_cast<size_t>(n);
            }
            if (!c.file || c.file_off >= c.file_end) break;
            size_t want = static_cast<size_t>(std::min<uint64_t>(c.file_end - c.file_off, 1 << 20));
            if (!c.ssl) {
                off_t off = static_cast<off_t>(c.file_off);
                ssize_t n = ::sendfile(c.fd.get(), c.file.get(), &off, want);
                if (n < 0) {
                    if (errno == EAGAIN || errno == EINTR) return;
                    return close_conn(id);
                }
                if (n == 0) return close_conn(id);  // the file is shorter than the range: cut the reply
                c.file_off += static_cast<uint64_t>(n);
                continue;
            }
            // TLS encrypts in user space: the next piece of the range goes through the buffer.
            c.out.resize(std::min<size_t>(want, 64 * 1024));
            ssize_t n = ::pread(c.file.get(), c.out.data(), c.out.size(), static_cast<off_t>(c.file_off));
            if (n <= 0) return close_conn(id);
            c.out.resize(static_cast<size_t>(n));
            c.out_off = 0;
            c.file_off += static_cast<uint64_t>(n);
        }
        finish(id, c);
    }

    void expire() {
        auto now = Clock::now();
        std::vector<uint64_t> late;
        for (auto& [id, c] : conns_)
            if (c.deadline <= now) late.push_back(id);
        for (uint64_t id : late) {
            Conn& c = conns_[id];
            std::string late_msg = "request: not complete within " + std::to_string(o_.deadline_seconds) + " s";
            if (c.phase == Conn::Phase::Handshake) {
                log_line("TLS: refused " + c.client + ": handshake not complete within " +
                         std::to_string(o_.deadline_seconds) + " s");
            } else if (c.phase == Conn::Phase::Reading && c.ssl) {
                std::string l = error_line(late_msg);  // best effort, never blocking
                SSL_write(c.ssl.get(), l.data(), static_cast<int>(l.size()));
                ERR_clear_error();
            } else if (c.phase == Conn::Phase::Reading) {
                refuse_now(c.fd.get(), late_msg);
            }
            close_conn(id);  // a worker still busy for it finds it gone
        }
    }

    void collect() {
        uint64_t v;
        (void)!::read(efd_.get(), &v, sizeof v);
        std::deque<Done> done;
        {
            std::lock_guard<std::mutex> l(mu_);
            done.swap(done_);
        }
        for (auto& d : done) {
            auto it = conns_.find(d.conn);
            if (it == conns_.end()) continue;
            Conn& c = it->second;
            reply(c, std::move(d.head));
            c.file = std::move(d.file);
            c.file_off = d.begin;
            c.file_end = d.end;
            step(d.conn, 0);
        }
    }

    void work() {
        for (;;) {
            Job job;
            {
                std::unique_lock<std::mutex> l(mu_);
                cv_.wait(l, [this] { return !jobs_.empty(); });
                job = std::move(jobs_.front());
                jobs_.pop_front();
            }
            Done d;
            d.conn = job.conn;
            try {
                const json& req = job.request;
                std::string op = req["op"].get<std::string>();
                if (op == "quote") {
                    QuoteRequest q;
                    q.tcti = o_.settings.tcti;
                    q.log = o_.settings.log;
                    q.nonce = parse_nonce(req["nonce"].get<std::string>(), "request: nonce");
                    q.from = req.value("from", uint64_t{0});
                    if (req.contains("pcrs"))
                        for (const auto& p : req["pcrs"]) q.pcrs.push_back(p.get<uint32_t>());
                    else q.pcrs = {o_.settings.pcr};
                    QuoteReply r;
                    {
                        std::lock_guard<std::mutex> l(g_tpm);  // also guards ak_
                        q.ak = &ak_;
                        r = take_quote(q);
                    }
                    json h = r.header.to_json();
                    h["bytes"] = r.end - r.begin;
                    d.head = h.dump() + "\n";
                    d.file = std::move(r.log_fd);
                    d.begin = r.begin;
                    d.end = r.end;
                } else if (op == "ak") {
                    d.head = ak_info(o_.settings).dump() + "\n";
                } else {
                    d.head = activate(o_.settings, req).dump() + "\n";
                }
            } catch (const std::exception& e) {
                d.head = error_line(e.what());
                d.file.reset();
                d.begin = d.end = 0;
            }
            {
                std::lock_guard<std::mutex> l(mu_);
                done_.push_back(std::move(d));
            }
            uint64_t one = 1;
            (void)!::write(efd_.get(), &one, sizeof one);
        }
    }

    const ServeOptions& o_;
    KeptAk ak_;  // loaded for each quote, not re-created
    UniqueFd lfd_, efd_;
    std::map<uint64_t, Conn> conns_;
    std::map<std::string, size_t> per_client_;
    uint64_t next_id_ = 1;
    Clock::time_point accept_pause_until_{};

    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Job> jobs_;
    std::deque<Done> done_;
};

}  // namespace

void serve(const ServeOptions& opt) {
    ::signal(SIGPIPE, SIG_IGN);  // sendfile to a client that went away
    static Server server(opt);
    server.run();
}

}  // namespace trustme::attest
