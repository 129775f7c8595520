// A synchronous etcd v3 client through etcd's JSON gateway (HTTP POST /v3/..., libcurl),
// for the state a gateway cluster keeps in etcd: leases for liveness, transactions that
// compare revisions for ownership, watches that resume from a revision.
//
//   auto client = EtcdClient::create({.endpoints = {"http://10.0.0.1:2379", "http://10.0.0.2:2379"}});
//   auto lease = client->lease_grant(10);
//   client->put("nodes/gw1", "...", lease->id);
//   std::vector<etcd::Compare> unchanged = {etcd::Compare::mod_revision("sas/x", etcd::Compare::Result::kEqual, rev)};
//   std::vector<etcd::Op> take = {etcd::Op::put_kv("sas/x", blob)};
//   auto r = client->txn(unchanged, take);  // r->succeeded is false if another node wrote first
//
// Every call blocks for at most its timeout (the client's default, or the one passed) and
// returns a typed result; nothing throws. Errors say which endpoint failed and how
// (etcd_types.h: unreachable, timeout, HTTP status, etcd's own message, malformed answer).
//
// Endpoints: a call goes to the endpoint that answered last. When that one cannot be
// reached (refused, no route, connect timeout) or answers "no leader", the call moves on
// to the next, within the same timeout, and the one that answers is remembered. A request
// that may have reached etcd (a timeout after connecting, a connection broken mid-answer)
// is not sent again, since a put or txn could then apply twice; the error is returned and
// the next call starts at the next endpoint.
//
// One libcurl easy handle per client, reused, so calls to one endpoint share a kept-alive
// connection. Calls from several threads are serialised. A watch (EtcdWatch) has a
// connection and a thread of its own.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/expected.h"
#include "platform/etcd_types.h"

namespace mobike::platform {

using EtcdError = etcd::Error;

struct EtcdWatchOptions {
  std::chrono::milliseconds connect_timeout{500};  // per endpoint and attempt
  // After a failed attempt the watch waits retry_min, doubling up to retry_max while
  // attempts keep failing (every endpoint is tried in turn).
  std::chrono::milliseconds retry_min{100};
  std::chrono::milliseconds retry_max{1000};
  // TCP keepalive on the idle stream: a peer that vanished without closing is noticed
  // after about idle + 9 x interval.
  std::chrono::seconds keepalive_idle{10};
  std::chrono::seconds keepalive_interval{5};
};

// A streaming watch (POST /v3/watch) on its own thread. The callback gets every update
// (etcd_types.h WatchUpdate) on that thread, in order.
//
// The watch resumes by itself: when the stream breaks (etcd killed, connection reset, an
// error from etcd such as "no leader"), the callback gets kDisconnected with the error,
// and the watch reconnects, trying the endpoints in turn, from the revision after the
// last one it delivered (next_revision()); the callback then gets kCreated with resumed
// set, and the events it missed. No event is lost or delivered twice across a
// reconnection unless etcd compacted the revision meanwhile: then kCompacted ends the
// watch (read the state again and start a new watch). kCanceled ends it too.
class EtcdWatch {
 public:
  using Callback = std::function<void(const etcd::WatchUpdate&)>;

  // Starts at endpoints[first]. kInvalidArgument for a bad endpoint; connection problems
  // are not errors here but kDisconnected updates.
  static Expected<EtcdWatch, EtcdError> start(std::vector<std::string> endpoints, std::size_t first,
                                              etcd::WatchRequest request, Callback callback,
                                              EtcdWatchOptions options = {});

  EtcdWatch(EtcdWatch&&) noexcept;
  EtcdWatch& operator=(EtcdWatch&&) noexcept;
  ~EtcdWatch();  // stop()

  // Ends the watch: aborts the transfer at once (not at libcurl's next progress tick) and
  // waits for the thread, so no callback runs after stop() returns. Idempotent. From the
  // callback itself it only asks the thread to end (it cannot wait for itself); the
  // EtcdWatch must not be destroyed from its callback.
  void stop();
  // False once stopped, compacted or canceled.
  bool running() const;
  // Where the watch would resume: the revision after the last delivered one (the
  // request's start_revision before any).
  std::int64_t next_revision() const;

 private:
  struct Impl;
  explicit EtcdWatch(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct EtcdClientOptions {
  // "http://host:port"; a bare "host:port" means http.
  std::vector<std::string> endpoints;
  // The default of every call, over all the endpoints it tries.
  std::chrono::milliseconds timeout{2000};
  // Per endpoint: how long a connection may take before the next endpoint is tried.
  std::chrono::milliseconds connect_timeout{500};
  // What put_batch() puts into one transaction: etcd's --max-txn-ops (128 by default; it
  // refuses larger transactions) and a budget below its --max-request-bytes (1.5 MiB).
  std::size_t max_txn_ops = 128;
  std::size_t max_txn_bytes = std::size_t{1} << 20;
  // An answer larger than this is refused (kMalformed) rather than buffered.
  std::size_t max_answer_bytes = std::size_t{256} << 20;
};

class EtcdClient {
 public:
  // Per-call timeout; zero: the client's default.
  using Timeout = std::chrono::milliseconds;
  static constexpr std::size_t kDefaultMaxTxnOps = 128;

  // Checks the endpoints and sets up libcurl; nothing is sent yet.
  static Expected<EtcdClient, EtcdError> create(EtcdClientOptions options);

  EtcdClient(EtcdClient&&) noexcept;
  EtcdClient& operator=(EtcdClient&&) noexcept;
  ~EtcdClient();

  // Leases. lease_keepalive() renews once and returns the TTL it was renewed to;
  // kLeaseNotFound once the lease has expired or was revoked (so does lease_revoke()).
  Expected<etcd::LeaseGrant, EtcdError> lease_grant(std::int64_t ttl_seconds, Timeout timeout = {});
  Expected<std::int64_t, EtcdError> lease_keepalive(std::int64_t id, Timeout timeout = {});
  Expected<void, EtcdError> lease_revoke(std::int64_t id, Timeout timeout = {});

  // Key-values. put() returns the revision of the change; a lease that does not exist is
  // kLeaseNotFound.
  Expected<std::int64_t, EtcdError> put(std::string_view key, std::string_view value, std::int64_t lease = 0,
                                        Timeout timeout = {});
  Expected<etcd::PutResult, EtcdError> put(const etcd::PutRequest& request, Timeout timeout = {});
  // One key (kvs empty when it does not exist); the header's revision either way.
  Expected<etcd::RangeResult, EtcdError> get(std::string_view key, Timeout timeout = {});
  // Every key starting with `prefix`, in key order.
  Expected<etcd::RangeResult, EtcdError> range(std::string_view prefix, Timeout timeout = {});
  Expected<etcd::RangeResult, EtcdError> range(const etcd::RangeRequest& request, Timeout timeout = {});
  Expected<etcd::DeleteResult, EtcdError> del(std::string_view key, Timeout timeout = {});
  Expected<etcd::DeleteResult, EtcdError> del_prefix(std::string_view prefix, Timeout timeout = {});
  Expected<etcd::DeleteResult, EtcdError> del(const etcd::DeleteRequest& request, Timeout timeout = {});

  // If every compare holds, the success ops run, else the failure ops; atomically, at one
  // revision. A failed compare is no error: succeeded is false.
  Expected<etcd::TxnResult, EtcdError> txn(std::span<const etcd::Compare> compares, std::span<const etcd::Op> success,
                                           std::span<const etcd::Op> failure = {}, Timeout timeout = {});

  // Many puts in as few transactions as max_txn_ops and max_txn_bytes allow
  // (etcd::split_put_batch), one after the other, each with the timeout. Atomic per
  // transaction only: on an error, the transactions before it are written (the error
  // says how many puts).
  struct BatchResult {
    std::size_t txns = 0;
    std::int64_t revision = 0;  // of the last transaction
  };
  Expected<BatchResult, EtcdError> put_batch(std::span<const etcd::PutRequest> puts, Timeout timeout = {});
  std::size_t max_txn_ops() const;

  // The status of the member that answers (the current endpoint, or the next reachable).
  Expected<etcd::MemberStatus, EtcdError> status(Timeout timeout = {});

  // A watch (see EtcdWatch) on these endpoints, starting at the current one.
  Expected<EtcdWatch, EtcdError> watch(etcd::WatchRequest request, EtcdWatch::Callback callback,
                                       EtcdWatchOptions options = {}) const;

  const std::vector<std::string>& endpoints() const;
  // The endpoint the next call goes to first: the one that answered last.
  const std::string& current_endpoint() const;

 private:
  struct Impl;
  explicit EtcdClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "http://host:port" from "host:port" or a URL (without a trailing '/'); kInvalidArgument
// for another scheme or an empty host.
Expected<std::string, EtcdError> normalize_etcd_endpoint(std::string_view endpoint);

}  // namespace mobike::platform
