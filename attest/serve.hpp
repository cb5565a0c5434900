// `trustme-attest serve`: the attester's challenge/response service, for many verifiers at once.
//
// One thread runs a poll(2) loop over every connection: it reads requests and writes replies without
// blocking, so an idle or slow client holds a slot and a buffer, never a thread. Requests that need the
// TPM go to a small pool of workers (the TPM serves one command at a time anyway). Bounded everywhere:
// connections in all and per client, request size, and one deadline per request from accept to the last
// byte of the reply. Every refusal is a JSON line {"error":"..."}.
#pragma once
#include <cstddef>
#include <string>

#include "attest/cli.hpp"
#include "attest/tls.hpp"

namespace trustme::attest {

struct ServeOptions {
    cli::Settings settings;
    std::string listen;
    bool enroll = false;           // also answer "ak" and "activate" (credential activation runs a TPM operation)
    int deadline_seconds = 30;     // per request: accept to last byte of the reply
    size_t max_connections = 256;  // open at once
    size_t max_per_client = 64;    // open at once from one address (TCP) or one uid (unix socket)
    size_t workers = 2;
    const tls::Context* tls = nullptr;  // mutual TLS: only allow-listed verifiers get past the handshake
};

[[noreturn]] void serve(const ServeOptions& opt);

}  // namespace trustme::attest

#include <nlohmann/json.hpp>

namespace trustme::attest {
// {"ak_public":hex,"ek_cert":hex} and credential activation: the attester's side of `ak enroll`.
nlohmann::json ak_info(const cli::Settings& s);
nlohmann::json activate(const cli::Settings& s, const nlohmann::json& req);
}  // namespace trustme::attest
