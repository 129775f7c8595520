#include "platform/etcd_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include "platform/etcd_json.h"

namespace mobike::platform {
namespace {

using Clock = std::chrono::steady_clock;
using etcd::Error;

void curl_global() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlEasyDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct CurlMultiDeleter {
  void operator()(CURLM* m) const { curl_multi_cleanup(m); }
};
struct CurlSlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;
using CurlMulti = std::unique_ptr<CURLM, CurlMultiDeleter>;
using CurlHeaders = std::unique_ptr<curl_slist, CurlSlistDeleter>;

Error local_error(Error::Kind kind, std::string message) { return Error{.kind = kind, .message = std::move(message)}; }

// Content-Type for the gateway; no "Expect: 100-continue" round trip for larger bodies;
// "hasleader" (gRPC metadata, which the gateway takes from Grpc-Metadata-* headers) makes
// a member without a leader refuse at once ("no leader") instead of holding the request
// until its own timeout, and end a watch when it loses its leader, so that both go to
// another member.
CurlHeaders make_headers() {
  curl_slist* list = nullptr;
  for (const char* h : {"Content-Type: application/json", "Expect:", "Grpc-Metadata-hasleader: true"}) {
    curl_slist* grown = curl_slist_append(list, h);
    if (grown == nullptr) {
      curl_slist_free_all(list);
      return nullptr;
    }
    list = grown;
  }
  return CurlHeaders(list);
}

// Options every handle of ours shares. False when libcurl refuses one.
bool set_common_options(CURL* h, curl_slist* headers, char* errbuf) {
  bool ok = true;
  ok &= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
  ok &= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
  // Never through a proxy from http_proxy & co.: etcd is reached directly.
  ok &= curl_easy_setopt(h, CURLOPT_PROXY, "") == CURLE_OK;
  ok &= curl_easy_setopt(h, CURLOPT_POST, 1L) == CURLE_OK;
  ok &= curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers) == CURLE_OK;
  ok &= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK;
  return ok;
}

std::string lowercase_first(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

// A failed transfer as an Error: kUnreachable when no request went out (so it may go to
// another endpoint), kTimeout when one did and no answer came in time, else kTransport.
Error transfer_error(CURL* h, CURLcode code, const char* errbuf, const std::string& endpoint) {
  Error e{.kind = Error::Kind::kTransport, .endpoint = endpoint};
  std::string detail = (errbuf != nullptr && errbuf[0] != '\0') ? errbuf : curl_easy_strerror(code);
  long os_errno = 0;
  curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
  long sent = 0;
  curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent);
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      e.kind = Error::Kind::kUnreachable;
      e.message = (os_errno != 0 ? lowercase_first(std::strerror(static_cast<int>(os_errno))) : "cannot connect") +
                  " (" + detail + ")";
      break;
    case CURLE_OPERATION_TIMEDOUT:
      if (sent == 0) {
        e.kind = Error::Kind::kUnreachable;
        e.message = "connect timed out (" + detail + ")";
      } else {
        e.kind = Error::Kind::kTimeout;
        e.message = "no answer in time (" + detail + ")";
      }
      break;
    default: e.message = detail; break;
  }
  return e;
}

long millis(std::chrono::milliseconds d) { return static_cast<long>(std::max<std::int64_t>(d.count(), 1)); }

// The body of an answer, bounded.
struct Sink {
  std::string body;
  std::size_t limit = 0;
  bool overflow = false;
};

std::size_t write_to_sink(char* data, std::size_t size, std::size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  std::size_t n = size * count;
  if (sink->body.size() + n > sink->limit) {
    sink->overflow = true;
    return 0;
  }
  try {
    sink->body.append(data, n);
  } catch (...) {
    sink->overflow = true;
    return 0;
  }
  return n;
}

std::string describe(const Error& e) { return e.endpoint + ": " + std::string(etcd::to_string(e.kind)); }

}  // namespace

Expected<std::string, EtcdError> normalize_etcd_endpoint(std::string_view endpoint) {
  std::string_view scheme = "http://";
  std::string_view rest = endpoint;
  if (auto sep = endpoint.find("://"); sep != std::string_view::npos) {
    scheme = endpoint.substr(0, sep + 3);
    rest = endpoint.substr(sep + 3);
    if (scheme != "http://" && scheme != "https://")
      return unexpected(local_error(Error::Kind::kInvalidArgument, "endpoint '" + std::string(endpoint) +
                                                                       "': only http:// and https:// are supported"));
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty() || rest.front() == ':' || rest.find('/') != std::string_view::npos)
    return unexpected(local_error(Error::Kind::kInvalidArgument,
                                  "endpoint '" + std::string(endpoint) + "': expected http://host:port"));
  return std::string(scheme) + std::string(rest);
}

namespace {

Expected<std::vector<std::string>, EtcdError> normalize_endpoints(const std::vector<std::string>& endpoints) {
  if (endpoints.empty()) return unexpected(local_error(Error::Kind::kInvalidArgument, "no etcd endpoint given"));
  std::vector<std::string> out;
  for (const auto& e : endpoints) {
    auto url = normalize_etcd_endpoint(e);
    if (!url) return unexpected(url.error());
    out.push_back(std::move(*url));
  }
  return out;
}

}  // namespace

// --------------------------------------------------------------------------- EtcdWatch

struct EtcdWatch::Impl {
  std::vector<std::string> endpoints;
  std::size_t index = 0;
  etcd::WatchStream stream;
  Callback callback;
  EtcdWatchOptions options;

  CurlMulti multi;
  CurlEasy easy;
  CurlHeaders headers;
  char errbuf[CURL_ERROR_SIZE] = {};

  std::atomic<bool> stop_requested{false};
  std::atomic<bool> running{true};
  std::atomic<std::int64_t> next_revision{0};
  std::mutex mutex;
  std::condition_variable wake;
  std::thread thread;

  // The current connection.
  std::string endpoint;
  std::string body;
  long status = 0;
  std::string error_body;
  std::optional<Error> stream_error;
  bool callback_failed = false;
  std::vector<etcd::WatchUpdate> updates;

  Impl(std::vector<std::string> eps, std::size_t first, etcd::WatchRequest request, Callback cb, EtcdWatchOptions opts)
      : endpoints(std::move(eps)),
        index(first % endpoints.size()),
        stream(std::move(request)),
        callback(std::move(cb)),
        options(opts) {
    next_revision = stream.next_revision();
  }

  ~Impl() {
    request_stop();
    if (thread.joinable()) thread.join();
  }

  void request_stop() {
    stop_requested = true;
    if (multi) curl_multi_wakeup(multi.get());
    std::lock_guard lock(mutex);
    wake.notify_all();
  }

  void deliver(etcd::WatchUpdate& u) {
    if (stop_requested || callback_failed) return;
    u.endpoint = endpoint;
    try {
      callback(u);
    } catch (...) {
      // Nothing may unwind through libcurl; a callback that throws ends the watch.
      callback_failed = true;
    }
  }

  static std::size_t on_data(char* data, std::size_t size, std::size_t count, void* user) {
    auto* self = static_cast<Impl*>(user);
    std::size_t n = size * count;
    if (self->stop_requested) return 0;
    if (self->status == 0) curl_easy_getinfo(self->easy.get(), CURLINFO_RESPONSE_CODE, &self->status);
    try {
      if (self->status != 200) {
        if (self->error_body.size() < 65536) self->error_body.append(data, std::min<std::size_t>(n, 65536));
        return n;
      }
      self->updates.clear();
      auto fed = self->stream.feed(std::string_view(data, n), self->updates);
      self->next_revision = self->stream.next_revision();
      for (auto& u : self->updates) self->deliver(u);
      if (!fed) {
        self->stream_error = fed.error();
        return 0;
      }
    } catch (...) {
      self->stream_error = Error{.kind = Error::Kind::kMalformed, .message = "out of memory in the watch stream"};
      return 0;
    }
    if (self->stream.ended() || self->callback_failed) return 0;
    return n;
  }

  // One connection, until it breaks (the error), or the watch stops or ends (nullopt).
  std::optional<Error> connect_once() {
    endpoint = endpoints[index];
    body = stream.create_body();
    stream.begin_connection();
    status = 0;
    error_body.clear();
    stream_error.reset();
    errbuf[0] = '\0';
    CURL* h = easy.get();
    std::string url = endpoint + "/v3/watch";
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, millis(options.connect_timeout));
    if (curl_multi_add_handle(multi.get(), h) != CURLM_OK)
      return Error{.kind = Error::Kind::kTransport, .endpoint = endpoint, .message = "curl_multi_add_handle failed"};
    CURLcode result = CURLE_OK;
    bool done = false;
    std::optional<Error> multi_error;
    while (!done && !stop_requested) {
      int active = 0;
      CURLMcode mc = curl_multi_perform(multi.get(), &active);
      if (mc != CURLM_OK) {
        multi_error = Error{.kind = Error::Kind::kTransport,
                            .endpoint = endpoint,
                            .message = std::string("curl_multi_perform: ") + curl_multi_strerror(mc)};
        break;
      }
      int left = 0;
      while (CURLMsg* m = curl_multi_info_read(multi.get(), &left)) {
        if (m->msg == CURLMSG_DONE && m->easy_handle == h) {
          result = m->data.result;
          done = true;
        }
      }
      if (done || stop_requested) break;
      curl_multi_poll(multi.get(), nullptr, 0, 1000, nullptr);
    }
    curl_multi_remove_handle(multi.get(), h);
    if (stop_requested || stream.ended() || callback_failed) return std::nullopt;
    if (status == 0) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);  // an answer without a body
    if (stream_error) {
      stream_error->endpoint = endpoint;
      return stream_error;
    }
    if (status != 0 && status != 200) {
      Error e = etcd::decode_error(static_cast<int>(status), error_body);
      e.endpoint = endpoint;
      return e;
    }
    if (multi_error) return multi_error;
    if (result == CURLE_OK)
      return Error{.kind = Error::Kind::kTransport, .endpoint = endpoint, .message = "the watch stream ended"};
    return transfer_error(h, result, errbuf, endpoint);
  }

  void run() {
    int failures = 0;
    while (!stop_requested) {
      auto error = connect_once();
      if (!error || stop_requested) break;
      etcd::WatchUpdate u;
      u.kind = etcd::WatchUpdate::Kind::kDisconnected;
      u.revision = stream.next_revision() > 0 ? stream.next_revision() - 1 : 0;
      u.reason = error->to_string();
      u.error = std::move(*error);
      deliver(u);
      if (callback_failed) break;
      // Back-off only while attempts keep failing; the next endpoint after every failure.
      failures = stream.created() ? 1 : failures + 1;
      index = (index + 1) % endpoints.size();
      auto delay = options.retry_min * (1LL << std::min(failures - 1, 16));
      if (delay > options.retry_max) delay = options.retry_max;
      std::unique_lock lock(mutex);
      wake.wait_for(lock, delay, [this] { return stop_requested.load(); });
    }
    running = false;
  }
};

Expected<EtcdWatch, EtcdError> EtcdWatch::start(std::vector<std::string> endpoints, std::size_t first,
                                                etcd::WatchRequest request, Callback callback,
                                                EtcdWatchOptions options) {
  auto eps = normalize_endpoints(endpoints);
  if (!eps) return unexpected(eps.error());
  if (request.key.empty()) return unexpected(local_error(Error::Kind::kInvalidArgument, "watch: empty key"));
  if (!callback) return unexpected(local_error(Error::Kind::kInvalidArgument, "watch: no callback"));
  curl_global();
  auto impl = std::make_unique<Impl>(std::move(*eps), first, std::move(request), std::move(callback), options);
  impl->multi.reset(curl_multi_init());
  impl->easy.reset(curl_easy_init());
  impl->headers = make_headers();
  if (!impl->multi || !impl->easy || !impl->headers ||
      !set_common_options(impl->easy.get(), impl->headers.get(), impl->errbuf))
    return unexpected(local_error(Error::Kind::kInvalidArgument, "watch: cannot set up libcurl"));
  CURL* h = impl->easy.get();
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Impl::on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, impl.get());
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE,
                   static_cast<long>(std::max<std::int64_t>(options.keepalive_idle.count(), 1)));
  curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL,
                   static_cast<long>(std::max<std::int64_t>(options.keepalive_interval.count(), 1)));
  Impl* raw = impl.get();
  try {
    impl->thread = std::thread([raw] { raw->run(); });
  } catch (const std::system_error& e) {
    return unexpected(local_error(Error::Kind::kInvalidArgument, std::string("watch: no thread: ") + e.what()));
  }
  return EtcdWatch(std::move(impl));
}

EtcdWatch::EtcdWatch(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EtcdWatch::EtcdWatch(EtcdWatch&&) noexcept = default;
EtcdWatch& EtcdWatch::operator=(EtcdWatch&&) noexcept = default;
EtcdWatch::~EtcdWatch() = default;  // Impl's destructor stops and joins

void EtcdWatch::stop() {
  if (!impl_) return;
  impl_->request_stop();
  if (impl_->thread.joinable() && impl_->thread.get_id() != std::this_thread::get_id()) impl_->thread.join();
}

bool EtcdWatch::running() const { return impl_ && impl_->running && !impl_->stop_requested; }

std::int64_t EtcdWatch::next_revision() const { return impl_ ? impl_->next_revision.load() : 0; }

// --------------------------------------------------------------------------- EtcdClient

struct EtcdClient::Impl {
  EtcdClientOptions options;
  std::vector<std::string> endpoints;
  mutable std::mutex mutex;
  std::size_t current = 0;
  CurlEasy easy;
  CurlHeaders headers;
  char errbuf[CURL_ERROR_SIZE] = {};
  Sink sink;

  struct Answer {
    std::string body;
    std::string endpoint;
  };

  Expected<std::string, Error> post_once(const std::string& endpoint, std::string_view path, const std::string& body,
                                         std::chrono::milliseconds remaining) {
    CURL* h = easy.get();
    std::string url = endpoint + std::string(path);
    sink.body.clear();
    sink.overflow = false;
    sink.limit = options.max_answer_bytes;
    errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, millis(remaining));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, millis(std::min(remaining, options.connect_timeout)));
    CURLcode code = curl_easy_perform(h);
    if (sink.overflow)
      return unexpected(Error{.kind = Error::Kind::kMalformed,
                              .endpoint = endpoint,
                              .message = "answer larger than " + std::to_string(sink.limit) + " octets"});
    if (code != CURLE_OK) return unexpected(transfer_error(h, code, errbuf, endpoint));
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
      Error e = etcd::decode_error(static_cast<int>(status), sink.body);
      e.endpoint = endpoint;
      return unexpected(std::move(e));
    }
    return std::move(sink.body);
  }

  // POST path with body: the current endpoint first, then the others while they cannot
  // be reached or have no leader, all within the timeout.
  Expected<Answer, Error> post(std::string_view path, const std::string& body, Timeout timeout) {
    std::lock_guard lock(mutex);
    auto budget = timeout > Timeout::zero() ? timeout : options.timeout;
    auto deadline = Clock::now() + budget;
    const std::size_t n = endpoints.size();
    std::vector<Error> failed;
    for (std::size_t i = 0; i < n; ++i) {
      std::size_t idx = (current + i) % n;
      auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (remaining <= std::chrono::milliseconds::zero()) break;
      auto r = post_once(endpoints[idx], path, body, remaining);
      if (r) {
        current = idx;
        return Answer{std::move(*r), endpoints[idx]};
      }
      Error e = r.error();
      if (e.kind != Error::Kind::kUnreachable && !etcd::is_no_leader(e)) {
        // The request may have reached etcd: not again. The next call starts elsewhere
        // unless etcd itself answered.
        if (e.kind == Error::Kind::kTimeout || e.kind == Error::Kind::kTransport) current = (idx + 1) % n;
        return unexpected(with_others(std::move(e), failed));
      }
      failed.push_back(std::move(e));
    }
    // Nobody answered: the next call starts at the next endpoint. The error to report is
    // etcd's own answer ("no leader") if one came, else the last endpoint's.
    std::size_t tried = failed.size();
    current = (current + 1) % n;
    if (failed.empty())
      return unexpected(Error{.kind = Error::Kind::kTimeout,
                              .endpoint = endpoints[current],
                              .message = "no time left for a request"});
    auto pick = std::find_if(failed.begin(), failed.end(), [](const Error& e) { return e.kind == Error::Kind::kEtcd; });
    if (pick == failed.end()) pick = failed.end() - 1;
    Error chosen = std::move(*pick);
    failed.erase(pick);
    if (tried < n)
      chosen.message += "; the timeout (" + std::to_string(budget.count()) + " ms) ended after " +
                        std::to_string(tried) + " of " + std::to_string(n) + " endpoints";
    return unexpected(with_others(std::move(chosen), failed));
  }

  static Error with_others(Error e, const std::vector<Error>& others) {
    if (others.empty()) return e;
    std::string tried;
    for (const auto& o : others) tried += (tried.empty() ? "" : ", ") + describe(o);
    e.message += " (other endpoints: " + tried + ")";
    return e;
  }

  template <class Decode>
  auto call(std::string_view path, const std::string& body, Timeout timeout, Decode decode)
      -> decltype(decode(std::string_view())) {
    auto answer = post(path, body, timeout);
    if (!answer) return unexpected(answer.error());
    auto decoded = decode(answer->body);
    if (!decoded) {
      Error e = decoded.error();
      e.endpoint = answer->endpoint;
      return unexpected(std::move(e));
    }
    return decoded;
  }
};

Expected<EtcdClient, EtcdError> EtcdClient::create(EtcdClientOptions options) {
  auto eps = normalize_endpoints(options.endpoints);
  if (!eps) return unexpected(eps.error());
  curl_global();
  auto impl = std::make_unique<Impl>();
  impl->endpoints = std::move(*eps);
  impl->options = std::move(options);
  impl->options.endpoints = impl->endpoints;
  impl->easy.reset(curl_easy_init());
  impl->headers = make_headers();
  if (!impl->easy || !impl->headers || !set_common_options(impl->easy.get(), impl->headers.get(), impl->errbuf))
    return unexpected(local_error(Error::Kind::kInvalidArgument, "cannot set up libcurl"));
  curl_easy_setopt(impl->easy.get(), CURLOPT_WRITEFUNCTION, &write_to_sink);
  curl_easy_setopt(impl->easy.get(), CURLOPT_WRITEDATA, &impl->sink);
  return EtcdClient(std::move(impl));
}

EtcdClient::EtcdClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EtcdClient::EtcdClient(EtcdClient&&) noexcept = default;
EtcdClient& EtcdClient::operator=(EtcdClient&&) noexcept = default;
EtcdClient::~EtcdClient() = default;

Expected<etcd::LeaseGrant, EtcdError> EtcdClient::lease_grant(std::int64_t ttl_seconds, Timeout timeout) {
  if (ttl_seconds <= 0) return unexpected(local_error(Error::Kind::kInvalidArgument, "lease TTL must be positive"));
  return impl_->call("/v3/lease/grant", etcd::encode_lease_grant(ttl_seconds), timeout, etcd::decode_lease_grant);
}

Expected<std::int64_t, EtcdError> EtcdClient::lease_keepalive(std::int64_t id, Timeout timeout) {
  return impl_->call("/v3/lease/keepalive", etcd::encode_lease_id(id), timeout, etcd::decode_lease_keepalive);
}

Expected<void, EtcdError> EtcdClient::lease_revoke(std::int64_t id, Timeout timeout) {
  auto r = impl_->call("/v3/lease/revoke", etcd::encode_lease_id(id), timeout, etcd::decode_lease_revoke);
  if (!r) return unexpected(r.error());
  return {};
}

Expected<std::int64_t, EtcdError> EtcdClient::put(std::string_view key, std::string_view value, std::int64_t lease,
                                                  Timeout timeout) {
  auto r = put(etcd::PutRequest{.key = std::string(key), .value = std::string(value), .lease = lease}, timeout);
  if (!r) return unexpected(r.error());
  return r->revision();
}

Expected<etcd::PutResult, EtcdError> EtcdClient::put(const etcd::PutRequest& request, Timeout timeout) {
  if (request.key.empty()) return unexpected(local_error(Error::Kind::kInvalidArgument, "put: empty key"));
  return impl_->call("/v3/kv/put", etcd::encode_put(request), timeout, etcd::decode_put);
}

Expected<etcd::RangeResult, EtcdError> EtcdClient::get(std::string_view key, Timeout timeout) {
  return range(etcd::RangeRequest{.key = std::string(key)}, timeout);
}

Expected<etcd::RangeResult, EtcdError> EtcdClient::range(std::string_view prefix, Timeout timeout) {
  return range(etcd::RangeRequest{.key = etcd::prefix_range_start(std::string(prefix)),
                                  .range_end = etcd::prefix_range_end(prefix)},
               timeout);
}

Expected<etcd::RangeResult, EtcdError> EtcdClient::range(const etcd::RangeRequest& request, Timeout timeout) {
  if (request.key.empty()) return unexpected(local_error(Error::Kind::kInvalidArgument, "range: empty key"));
  return impl_->call("/v3/kv/range", etcd::encode_range(request), timeout, etcd::decode_range);
}

Expected<etcd::DeleteResult, EtcdError> EtcdClient::del(std::string_view key, Timeout timeout) {
  return del(etcd::DeleteRequest{.key = std::string(key)}, timeout);
}

Expected<etcd::DeleteResult, EtcdError> EtcdClient::del_prefix(std::string_view prefix, Timeout timeout) {
  return del(etcd::DeleteRequest{.key = etcd::prefix_range_start(std::string(prefix)),
                                 .range_end = etcd::prefix_range_end(prefix)},
             timeout);
}

Expected<etcd::DeleteResult, EtcdError> EtcdClient::del(const etcd::DeleteRequest& request, Timeout timeout) {
  if (request.key.empty()) return unexpected(local_error(Error::Kind::kInvalidArgument, "delete: empty key"));
  return impl_->call("/v3/kv/deleterange", etcd::encode_delete(request), timeout, etcd::decode_delete);
}

Expected<etcd::TxnResult, EtcdError> EtcdClient::txn(std::span<const etcd::Compare> compares,
                                                     std::span<const etcd::Op> success,
                                                     std::span<const etcd::Op> failure, Timeout timeout) {
  return impl_->call("/v3/kv/txn", etcd::encode_txn(compares, success, failure), timeout, etcd::decode_txn);
}

Expected<EtcdClient::BatchResult, EtcdError> EtcdClient::put_batch(std::span<const etcd::PutRequest> puts,
                                                                   Timeout timeout) {
  BatchResult result;
  std::size_t offset = 0;
  for (std::size_t size : etcd::split_put_batch(puts, impl_->options.max_txn_ops, impl_->options.max_txn_bytes)) {
    std::vector<etcd::Op> ops;
    ops.reserve(size);
    for (const auto& put : puts.subspan(offset, size)) {
      etcd::Op op;
      op.kind = etcd::Op::Kind::kPut;
      op.put = put;
      ops.push_back(std::move(op));
    }
    auto r = txn({}, ops, {}, timeout);
    if (!r) {
      Error e = r.error();
      e.message = "batch stopped after " + std::to_string(offset) + " of " + std::to_string(puts.size()) + " puts (" +
                  std::to_string(result.txns) + " transactions): " + e.message;
      return unexpected(std::move(e));
    }
    offset += size;
    ++result.txns;
    result.revision = r->revision();
  }
  return result;
}

Expected<etcd::MemberStatus, EtcdError> EtcdClient::status(Timeout timeout) {
  return impl_->call("/v3/maintenance/status", "{}", timeout, etcd::decode_status);
}

std::size_t EtcdClient::max_txn_ops() const { return impl_->options.max_txn_ops; }

Expected<EtcdWatch, EtcdError> EtcdClient::watch(etcd::WatchRequest request, EtcdWatch::Callback callback,
                                                 EtcdWatchOptions options) const {
  std::size_t first = 0;
  {
    std::lock_guard lock(impl_->mutex);
    first = impl_->current;
  }
  return EtcdWatch::start(impl_->endpoints, first, std::move(request), std::move(callback), options);
}

const std::vector<std::string>& EtcdClient::endpoints() const { return impl_->endpoints; }

const std::string& EtcdClient::current_endpoint() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->endpoints[impl_->current];
}

}  // namespace mobike::platform
