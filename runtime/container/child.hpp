// The parent's side of the setup of a child it clones into a container: `create`'s init and `exec`'s
// process (runtime/process/init.hpp). Both speak the handshake of runtime/process/sync.hpp over a
// socketpair made here; this is the one loop over the child's messages.
#pragma once
#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>

#include "base/fd.hpp"
#include "runtime/process/sync.hpp"

namespace trustme::container {

// Errors in the words of the command whose child it is.
struct ChildWords {
    const char* gone;        // the child died (closed its end) before it was ready
    const char* prefix;      // put before the child's own reason (Msg::Error)
    const char* unexpected;  // a message the command does not expect
};

// What the child may ask for while it sets up; a message without a handler is unexpected.
struct SetupHandlers {
    std::function<void()> hooks;  // HooksRequest: run prestart and createRuntime (HooksDone follows)
    std::function<void(UniqueFd master, const std::string& pty_name)> console;  // ConsoleFd
    std::function<void(UniqueFd listener)> seccomp;                             // SeccompFd
};

class SetupPeer {
public:
    explicit SetupPeer(ChildWords words);  // the socketpair, both ends close-on-exec
    // The child's end, for the InitConfig; close_child_end() once the child holds its copy.
    int child_end() const { return child_.get(); }
    void close_child_end() { child_.reset(); }
    // In the child, right after clone: drops the parent's end (the child must see EOF when the parent dies).
    void enter_child() noexcept { ours_.reset(); }

    // One message to the child; a child that is gone fails with words.gone, not "sync: send: Broken pipe".
    void tell(process::sync::Msg type, std::string_view text = {}) const;
    // The next message, which must be `type`: EOF fails with words.gone, Msg::Error with the child's
    // reason, anything else with words.unexpected.
    process::sync::Packet expect(process::sync::Msg type) const;
    // Answers the child's requests until it reports Ready.
    void serve(const SetupHandlers& handlers) const;

private:
    [[noreturn]] void fail_on(const process::sync::Packet* packet) const;
    ChildWords words_;
    UniqueFd ours_, child_;
};

// Passes the pty master to --console-socket (runc's protocol, utils.SendFd: the pty name as data).
void send_console_fd(const std::string& socket_path, int master, const std::string& name);

}  // namespace trustme::container
