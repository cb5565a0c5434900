// libtrustme-systemd.so: StartTransientUnit / SetUnitProperties / StopUnit over sd-bus
// (org.freedesktop.systemd1(5)). The properties arrive typed ([name, D-Bus signature, value]) from the
// driver (systemd.cpp), so this file only marshals and waits.
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/cgroups/systemd_plugin.h"

namespace {

using nlohmann::json;

constexpr const char* kDest = "org.freedesktop.systemd1";
constexpr const char* kPath = "/org/freedesktop/systemd1";
constexpr const char* kManager = "org.freedesktop.systemd1.Manager";
// runc waits 30 s for a unit's job (systemd/common.go startUnit, stopUnit).
constexpr uint64_t kJobTimeoutUsec = 30ull * 1000 * 1000;

struct Failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& what, int r, const sd_bus_error* e = nullptr) {
    std::string msg = what + ": ";
    msg += e && sd_bus_error_is_set(e) && e->message ? e->message : std::strerror(r < 0 ? -r : r);
    throw Failure(msg);
}

void check(int r, const char* what) {
    if (r < 0) fail(std::string("systemd: ") + what, r);
}

struct BusError {
    sd_bus_error e = SD_BUS_ERROR_NULL;
    ~BusError() { sd_bus_error_free(&e); }
    bool is(const char* name) const { return sd_bus_error_has_name(&e, name); }
};

struct Message {
    sd_bus_message* m = nullptr;
    ~Message() { sd_bus_message_unref(m); }
};

struct Bus {
    sd_bus* b = nullptr;
    ~Bus() { sd_bus_flush_close_unref(b); }
};

uint64_t now_usec() {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

// As root, systemd's private socket (what systemctl uses as root): no dbus-daemon in between; else, or
// when that fails, the system bus (runc: go-systemd NewWithContext does the same, the other way round).
// user: the caller's own systemd instance on its user bus ($DBUS_SESSION_BUS_ADDRESS, else
// $XDG_RUNTIME_DIR/bus), rootless. sd-bus authenticates with an empty EXTERNAL identity, so the bus
// takes our uid from the socket's peer credentials: it works from inside a user namespace too.
// Returns true for the private socket: a direct connection to systemd, not through a bus.
bool connect(Bus& bus, bool user) {
    if (user) {
        int r = sd_bus_open_user(&bus.b);
        if (r >= 0) return false;
        bus.b = nullptr;
        fail(
            "--systemd-cgroup: cannot reach the user's systemd instance over D-Bus ($DBUS_SESSION_BUS_ADDRESS, "
            "$XDG_RUNTIME_DIR/bus)",
            r);
    }
    int r = -ENOENT;
    if (::geteuid() == 0 && ::access("/run/systemd/private", F_OK) == 0) {
        r = sd_bus_new(&bus.b);
        if (r >= 0) r = sd_bus_set_address(bus.b, "unix:path=/run/systemd/private");
        if (r >= 0) r = sd_bus_start(bus.b);
        if (r >= 0) return true;
        sd_bus_unref(bus.b);
        bus.b = nullptr;
    }
    int r2 = sd_bus_open_system(&bus.b);
    if (r2 >= 0) return false;
    bus.b = nullptr;
    fail("--systemd-cgroup: cannot reach systemd over D-Bus (/run/systemd/private, the system bus)", r2);
}

// Length of the one complete type at the start of sig.
size_t complete_type(const char* sig) {
    if (*sig == 'a') return 1 + complete_type(sig + 1);
    if (*sig == '(') {
        size_t i = 1;
        while (sig[i] && sig[i] != ')') i += complete_type(sig + i);
        if (sig[i] != ')') throw Failure(std::string("systemd: bad signature ") + sig);
        return i + 1;
    }
    if (!*sig) throw Failure("systemd: empty signature");
    return 1;
}

void append(sd_bus_message* m, const std::string& sig, const json& v) {
    char c = sig[0];
    int r;
    if (c == 'a') {
        std::string elem = sig.substr(1);
        check(sd_bus_message_open_container(m, 'a', elem.c_str()), "message");
        for (auto& x : v) append(m, elem, x);
        check(sd_bus_message_close_container(m), "message");
        return;
    }
    if (c == '(') {
        std::string inner = sig.substr(1, sig.size() - 2);
        check(sd_bus_message_open_container(m, 'r', inner.c_str()), "message");
        size_t i = 0, k = 0;
        while (i < inner.size()) {
            size_t n = complete_type(inner.c_str() + i);
            append(m, inner.substr(i, n), v.at(k++));
            i += n;
        }
        check(sd_bus_message_close_container(m), "message");
        return;
    }
    switch (c) {
        case 's': {
            std::string s = v.get<std::string>();
            r = sd_bus_message_append_basic(m, c, s.c_str());
            break;
        }
        case 'b': {
            int b = v.get<bool>();
            r = sd_bus_message_append_basic(m, c, &b);
            break;
        }
        case 'y': {
            uint8_t x = v.get<uint8_t>();
            r = sd_bus_message_append_basic(m, c, &x);
            break;
        }
        case 'n': {
            int16_t x = v.get<int16_t>();
            r = sd_bus_message_append_basic(m, c, &x);
            break;
        }
        case 'q': {
            uint16_t x = v.get<uint16_t>();
            r = sd_bus_message_append_basic(m, c, &x);
            break;
        }
        case 'i': {
            int32_t x = v.get<int32_t>();
            r = sd_bus_message_append_basic(m, c, &x);
            break;
        }
        case 'u': {
            uint32_t x = v.get<uint32_t>();
            r = sd_bus_message_append_basic(m, c, &x);
            break;
        }
        case 'x': {
            int64_t x = v.get<int64_t>();
            r = sd_bus_message_append_basic(m, c, &x);
            break;
        }
        case 't': {
            uint64_t x = v.get<uint64_t>();
            r = sd_bus_message_append_basic(m, c, &x);
            break;
        }
        case 'd': {
            double x = v.get<double>();
            r = sd_bus_message_append_basic(m, c, &x);
            break;
        }
        default: throw Failure("systemd: unsupported signature " + sig);
    }
    check(r, "message");
}

// a(sv)
void append_properties(sd_bus_message* m, const json& props) {
    check(sd_bus_message_open_container(m, 'a', "(sv)"), "message");
    for (auto& p : props) {
        std::string name = p.at(0).get<std::string>(), sig = p.at(1).get<std::string>();
        if (complete_type(sig.c_str()) != sig.size())
            throw Failure("systemd: property " + name + ": bad signature " + sig);
        check(sd_bus_message_open_container(m, 'r', "sv"), "message");
        check(sd_bus_message_append_basic(m, 's', name.c_str()), "message");
        check(sd_bus_message_open_container(m, 'v', sig.c_str()), "message");
        append(m, sig, p.at(2));
        check(sd_bus_message_close_container(m), "message");
        check(sd_bus_message_close_container(m), "message");
    }
    check(sd_bus_message_close_container(m), "message");
}

// JobRemoved(u id, o job, s unit, s result) of every job seen, by object path.
struct Jobs {
    std::map<std::string, std::string> done;
};

int on_job_removed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    uint32_t id;
    const char *job, *unit, *result;
    if (sd_bus_message_read(m, "uoss", &id, &job, &unit, &result) >= 0)
        static_cast<Jobs*>(userdata)->done[job] = result;
    return 0;
}

// The job's result ("done", "failed", "canceled", ...), waiting at most kJobTimeoutUsec.
std::string wait_job(sd_bus* bus, Jobs& jobs, const std::string& job, const std::string& what) {
    uint64_t deadline = now_usec() + kJobTimeoutUsec;
    for (;;) {
        if (auto it = jobs.done.find(job); it != jobs.done.end()) return it->second;
        int r = sd_bus_process(bus, nullptr);
        if (r < 0) fail(what + ": waiting for the job", r);
        if (r > 0) continue;
        uint64_t now = now_usec();
        if (now >= deadline) throw Failure(what + ": systemd did not finish the job in 30 s");
        r = sd_bus_wait(bus, deadline - now);
        if (r < 0 && r != -EINTR) fail(what + ": waiting for the job", r);
    }
}

class Client {
public:
    explicit Client(bool user) {
        const bool direct = connect(bus_, user);
        // Match and subscribe first, so the job's JobRemoved cannot be missed. On a bus systemd sends its
        // signals only once some client called Subscribe; a direct connection gets them unconditionally
        // (systemd src/core/dbus.c bus_foreach_bus, "Send to all direct buses, unconditionally";
        // dbus-manager.c method_subscribe), so there the call is a round trip for nothing.
        check(sd_bus_match_signal(bus_.b, nullptr, kDest, kPath, kManager, "JobRemoved", on_job_removed, &jobs_),
              "match JobRemoved");
        if (direct) return;
        BusError e;
        int r = sd_bus_call_method(bus_.b, kDest, kPath, kManager, "Subscribe", &e.e, nullptr, "");
        if (r < 0 && !e.is("org.freedesktop.systemd1.AlreadySubscribed")) fail("systemd: Subscribe", r, &e.e);
    }

    void start(const std::string& unit, const json& props) {
        const std::string what = "systemd: start unit " + unit;
        for (int attempt = 0;; ++attempt) {
            Message m, reply;
            BusError e;
            check(sd_bus_message_new_method_call(bus_.b, &m.m, kDest, kPath, kManager, "StartTransientUnit"),
                  "message");
            check(sd_bus_message_append(m.m, "ss", unit.c_str(), "replace"), "message");
            append_properties(m.m, props);
            check(sd_bus_message_append(m.m, "a(sa(sv))", 0), "message");  // no auxiliary units
            int r = sd_bus_call(bus_.b, m.m, 0, &e.e, &reply.m);
            if (r < 0) {
                // A leftover (failed) unit of the same name: reset it and try once more (runc startUnit).
                if (attempt == 0 && e.is("org.freedesktop.systemd1.UnitExists")) {
                    reset_failed(unit);
                    continue;
                }
                fail(what, r, &e.e);
            }
            const char* job;
            check(sd_bus_message_read(reply.m, "o", &job), "reply");
            std::string result = wait_job(bus_.b, jobs_, job, what);
            if (result != "done") {
                reset_failed(unit);
                throw Failure(what + ": job " + result);
            }
            return;
        }
    }

    void set(const std::string& unit, const json& props) {
        Message m;
        BusError e;
        check(sd_bus_message_new_method_call(bus_.b, &m.m, kDest, kPath, kManager, "SetUnitProperties"), "message");
        check(sd_bus_message_append(m.m, "sb", unit.c_str(), 1), "message");
        append_properties(m.m, props);
        int r = sd_bus_call(bus_.b, m.m, 0, &e.e, nullptr);
        if (r < 0) fail("systemd: set properties of unit " + unit, r, &e.e);
    }

    void stop(const std::string& unit) {
        const std::string what = "systemd: stop unit " + unit;
        BusError e;
        Message reply;
        int r = sd_bus_call_method(bus_.b, kDest, kPath, kManager, "StopUnit", &e.e, &reply.m, "ss", unit.c_str(),
                                   "replace");
        if (r < 0) {
            if (e.is("org.freedesktop.systemd1.NoSuchUnit")) return;  // gone already (its last process exited)
            fail(what, r, &e.e);
        }
        const char* job;
        check(sd_bus_message_read(reply.m, "o", &job), "reply");
        wait_job(bus_.b, jobs_, job, what);  // any result: a failed stop leaves a failed unit, reset below
        reset_failed(unit);
    }

    std::string cgroup() {
        BusError e;
        char* s = nullptr;
        int r = sd_bus_get_property_string(bus_.b, kDest, kPath, kManager, "ControlGroup", &e.e, &s);
        if (r < 0) fail("systemd: the manager's ControlGroup", r, &e.e);
        std::string out = s ? s : "";
        std::free(s);
        return out;
    }

private:
    void reset_failed(const std::string& unit) {
        BusError e;
        sd_bus_call_method(bus_.b, kDest, kPath, kManager, "ResetFailedUnit", &e.e, nullptr, "s", unit.c_str());
    }

    Bus bus_;
    Jobs jobs_;
};

}  // namespace

extern "C" __attribute__((visibility("default"))) int trustme_systemd_call(const char* request, char* err,
                                                                           size_t errlen) {
    try {
        json req = json::parse(request);
        std::string op = req.at("op").get<std::string>(), unit = req.at("unit").get<std::string>();
        Client c(req.value("user", false));
        if (op == "start") c.start(unit, req.at("properties"));
        else if (op == "set") c.set(unit, req.at("properties"));
        else if (op == "stop") c.stop(unit);
        else if (op == "cgroup") {
            std::string cg = c.cgroup();
            if (cg.size() >= errlen) throw Failure("systemd: the manager's ControlGroup is too long");
            std::snprintf(err, errlen, "%s", cg.c_str());
        } else throw Failure("systemd: unknown operation \"" + op + "\"");
        return 0;
    } catch (const std::exception& e) {
        if (errlen) std::snprintf(err, errlen, "%s", e.what());
        return -1;
    }
}
