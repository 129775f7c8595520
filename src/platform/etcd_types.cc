#include "platform/etcd_types.h"

#include <utility>

namespace mobike::platform::etcd {

std::string_view to_string(Error::Kind kind) {
  switch (kind) {
    case Error::Kind::kInvalidArgument: return "invalid argument";
    case Error::Kind::kUnreachable: return "unreachable";
    case Error::Kind::kTimeout: return "timeout";
    case Error::Kind::kTransport: return "connection broken";
    case Error::Kind::kHttpStatus: return "HTTP error";
    case Error::Kind::kEtcd: return "etcd error";
    case Error::Kind::kLeaseNotFound: return "lease not found";
    case Error::Kind::kMalformed: return "malformed answer";
  }
  return "?";
}

std::string Error::to_string() const {
  std::string out = "etcd";
  if (!endpoint.empty()) out += " " + endpoint;
  out += ": ";
  out += etcd::to_string(kind);
  if (kind == Kind::kEtcd && grpc_code != 0) out += " (gRPC code " + std::to_string(grpc_code) + ")";
  if (kind == Kind::kHttpStatus && http_status != 0) out += " " + std::to_string(http_status);
  if (!message.empty()) out += ": " + message;
  return out;
}

std::string_view to_string(WatchUpdate::Kind kind) {
  switch (kind) {
    case WatchUpdate::Kind::kCreated: return "created";
    case WatchUpdate::Kind::kEvents: return "events";
    case WatchUpdate::Kind::kProgress: return "progress";
    case WatchUpdate::Kind::kDisconnected: return "disconnected";
    case WatchUpdate::Kind::kCompacted: return "compacted";
    case WatchUpdate::Kind::kCanceled: return "canceled";
  }
  return "?";
}

std::string prefix_range_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  // No octet can be incremented: every key from `prefix` on.
  return std::string(1, '\0');
}

std::string prefix_range_start(std::string prefix) { return prefix.empty() ? std::string(1, '\0') : prefix; }

Compare Compare::version(std::string key, Result r, std::int64_t v) {
  return Compare{.key = std::move(key), .target = Target::kVersion, .result = r, .number = v};
}

Compare Compare::create_revision(std::string key, Result r, std::int64_t rev) {
  return Compare{.key = std::move(key), .target = Target::kCreateRevision, .result = r, .number = rev};
}

Compare Compare::mod_revision(std::string key, Result r, std::int64_t rev) {
  return Compare{.key = std::move(key), .target = Target::kModRevision, .result = r, .number = rev};
}

Compare Compare::value_is(std::string key, Result r, std::string value) {
  return Compare{.key = std::move(key), .target = Target::kValue, .result = r, .value = std::move(value)};
}

Compare Compare::lease(std::string key, Result r, std::int64_t id) {
  return Compare{.key = std::move(key), .target = Target::kLease, .result = r, .number = id};
}

Op Op::get(std::string key) {
  Op op;
  op.kind = Kind::kRange;
  op.range.key = std::move(key);
  return op;
}

Op Op::get_prefix(std::string prefix) {
  Op op;
  op.kind = Kind::kRange;
  op.range.range_end = prefix_range_end(prefix);
  op.range.key = prefix_range_start(std::move(prefix));
  return op;
}

Op Op::put_kv(std::string key, std::string value, std::int64_t lease) {
  Op op;
  op.kind = Kind::kPut;
  op.put.key = std::move(key);
  op.put.value = std::move(value);
  op.put.lease = lease;
  return op;
}

Op Op::del_key(std::string key) {
  Op op;
  op.kind = Kind::kDelete;
  op.del.key = std::move(key);
  return op;
}

Op Op::del_prefix(std::string prefix) {
  Op op;
  op.kind = Kind::kDelete;
  op.del.range_end = prefix_range_end(prefix);
  op.del.key = prefix_range_start(std::move(prefix));
  return op;
}

}  // namespace mobike::platform::etcd
