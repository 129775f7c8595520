// The values of the etcd v3 API as mobiked uses them (etcd_client.h), without JSON or
// HTTP: key-values, compares and operations of a transaction, the results, watch events,
// and the one error type every call returns. Keys and values are raw octets (std::string);
// the base64 of the JSON gateway stays inside etcd_json.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mobike::platform::etcd {

// What failed, for every call of the client (and every decoder of etcd_json.h).
struct Error {
  enum class Kind : std::uint8_t {
    kInvalidArgument,  // the call itself was wrong (bad endpoint URL, empty key); nothing was sent
    kUnreachable,      // no connection: refused, no route, name not resolved, connect timed out
    kTimeout,          // connected, but no complete answer within the call's timeout
    kTransport,        // the connection broke during the exchange (reset, closed early)
    kHttpStatus,       // an HTTP status other than 200 whose body is not an etcd error
    kEtcd,             // etcd refused the request: grpc_code and its message
    kLeaseNotFound,    // the lease does not exist (any more): expired or revoked
    kMalformed,        // the answer is not what the v3 JSON gateway sends
  };
  Kind kind = Kind::kMalformed;
  std::string endpoint;  // the endpoint that failed (the last one tried); empty before one is
  std::string message;   // what failed, for humans
  int http_status = 0;   // kHttpStatus, kEtcd (and kLeaseNotFound from a status), else 0
  int grpc_code = 0;     // kEtcd: the gRPC status code etcd answered (3 InvalidArgument, ...)

  // "etcd http://127.0.0.1:2379: connection refused: Failed to connect to ..."
  std::string to_string() const;
};
std::string_view to_string(Error::Kind kind);

// The header of every answer; revision is the store's revision when the request was served
// (0 when etcd omitted it, as in some watch answers).
struct ResponseHeader {
  std::uint64_t cluster_id = 0;
  std::uint64_t member_id = 0;
  std::int64_t revision = 0;
  std::uint64_t raft_term = 0;
  friend bool operator==(const ResponseHeader&, const ResponseHeader&) = default;
};

struct KeyValue {
  std::string key;
  std::string value;
  std::int64_t create_revision = 0;  // revision of the last creation of this key
  std::int64_t mod_revision = 0;     // revision of the last change
  std::int64_t version = 0;          // changes since creation, 1 after the creation
  std::int64_t lease = 0;            // the lease it is bound to, 0: none
  friend bool operator==(const KeyValue&, const KeyValue&) = default;
};

// --------------------------------------------------------------------------- requests

// range_end for all keys starting with `prefix`: the prefix with its last octet below 0xff
// incremented and what follows dropped; "\0" (every key) for an empty or all-0xff prefix.
std::string prefix_range_end(std::string_view prefix);
// The key that starts the range of `prefix`: the prefix itself, "\0" for an empty one
// (etcd refuses an empty key).
std::string prefix_range_start(std::string prefix);

struct RangeRequest {
  std::string key;
  std::string range_end;      // empty: just `key`; "\0": every key >= key
  std::int64_t limit = 0;     // 0: no limit
  std::int64_t revision = 0;  // read at this revision (0: the latest)
  bool keys_only = false;
  bool count_only = false;
  friend bool operator==(const RangeRequest&, const RangeRequest&) = default;
};

struct PutRequest {
  std::string key;
  std::string value;
  std::int64_t lease = 0;
  bool prev_kv = false;
  friend bool operator==(const PutRequest&, const PutRequest&) = default;
};

struct DeleteRequest {
  std::string key;
  std::string range_end;  // as in RangeRequest
  bool prev_kv = false;
  friend bool operator==(const DeleteRequest&, const DeleteRequest&) = default;
};

// One condition of a transaction: `target` of `key` compared with a number (version,
// revisions, lease) or octets (value). A key that does not exist has version,
// create_revision and mod_revision 0, so "create_revision == 0" means "absent".
struct Compare {
  enum class Target : std::uint8_t { kVersion, kCreateRevision, kModRevision, kValue, kLease };
  enum class Result : std::uint8_t { kEqual, kNotEqual, kGreater, kLess };
  std::string key;
  Target target = Target::kModRevision;
  Result result = Result::kEqual;
  std::int64_t number = 0;  // every target but kValue
  std::string value;        // kValue
  std::string range_end;    // compare every key in [key, range_end) (rarely needed)

  static Compare version(std::string key, Result r, std::int64_t v);
  static Compare create_revision(std::string key, Result r, std::int64_t rev);
  static Compare mod_revision(std::string key, Result r, std::int64_t rev);
  static Compare value_is(std::string key, Result r, std::string value);
  static Compare lease(std::string key, Result r, std::int64_t id);
  friend bool operator==(const Compare&, const Compare&) = default;
};

// One operation of a transaction.
struct Op {
  enum class Kind : std::uint8_t { kRange, kPut, kDelete };
  Kind kind = Kind::kRange;
  RangeRequest range;  // kRange
  PutRequest put;      // kPut
  DeleteRequest del;   // kDelete

  static Op get(std::string key);
  static Op get_prefix(std::string prefix);
  static Op put_kv(std::string key, std::string value, std::int64_t lease = 0);
  static Op del_key(std::string key);
  static Op del_prefix(std::string prefix);
  friend bool operator==(const Op&, const Op&) = default;
};

// --------------------------------------------------------------------------- results

struct RangeResult {
  ResponseHeader header;
  std::vector<KeyValue> kvs;  // in key order
  std::int64_t count = 0;     // keys in the range (also beyond limit)
  bool more = false;          // limit cut the answer short
  std::int64_t revision() const { return header.revision; }
};

struct PutResult {
  ResponseHeader header;
  std::optional<KeyValue> prev_kv;  // with prev_kv, when the key existed
  std::int64_t revision() const { return header.revision; }
};

struct DeleteResult {
  ResponseHeader header;
  std::int64_t deleted = 0;
  std::vector<KeyValue> prev_kvs;  // with prev_kv
  std::int64_t revision() const { return header.revision; }
};

// The answer to one operation of a transaction, of the operation's kind.
struct OpResult {
  Op::Kind kind = Op::Kind::kRange;
  RangeResult range;
  PutResult put;
  DeleteResult del;
};

struct TxnResult {
  ResponseHeader header;
  bool succeeded = false;           // every compare held: the success ops ran
  std::vector<OpResult> responses;  // one per operation that ran, in order
  std::int64_t revision() const { return header.revision; }
};

struct LeaseGrant {
  std::int64_t id = 0;
  std::int64_t ttl = 0;  // seconds, as granted (etcd may raise a TTL below its minimum)
};

// One member's view (/v3/maintenance/status): which member answered (header.member_id)
// and which one it takes for the leader (0: none).
struct MemberStatus {
  ResponseHeader header;
  std::string version;  // etcd's, "3.4.23"
  std::uint64_t leader = 0;
  std::uint64_t raft_index = 0;
  std::uint64_t raft_term = 0;
  std::int64_t db_size = 0;
  bool is_leader() const { return leader != 0 && leader == header.member_id; }
};

// --------------------------------------------------------------------------- watch

// A watch on `key` (with range_end: on [key, range_end)) from start_revision (0: changes
// after now).
struct WatchRequest {
  std::string key;
  std::string range_end;
  std::int64_t start_revision = 0;
  bool prev_kv = false;          // events carry the key-value before the change
  bool progress_notify = false;  // etcd reports progress on an idle watch (every 10 min)
  friend bool operator==(const WatchRequest&, const WatchRequest&) = default;
};

struct WatchEvent {
  enum class Type : std::uint8_t { kPut, kDelete };
  Type type = Type::kPut;
  KeyValue kv;                      // kDelete: only key and mod_revision (the deletion's revision)
  std::optional<KeyValue> prev_kv;  // with prev_kv, when the key existed before
  friend bool operator==(const WatchEvent&, const WatchEvent&) = default;
};

// What a watch tells its callback.
struct WatchUpdate {
  enum class Kind : std::uint8_t {
    kCreated,       // the stream is (re-)established at `endpoint`; revision: the store's then
    kEvents,        // events, in revision order; revision: the header's
    kProgress,      // no events, but every change up to `revision` has been delivered
    kDisconnected,  // the stream broke or could not be opened (error); the watch retries
                    // from the revision after `revision`, the last one delivered
    kCompacted,     // the revision to resume from is compacted away: events were lost and
                    // the watch has ended (compact_revision: the oldest one still there)
    kCanceled,      // etcd canceled the watch (reason); it has ended
  };
  Kind kind = Kind::kEvents;
  std::int64_t revision = 0;
  std::vector<WatchEvent> events;
  std::int64_t compact_revision = 0;
  std::string reason;
  std::optional<Error> error;  // kDisconnected
  std::string endpoint;
  bool resumed = false;  // kCreated: a reconnection, from the revision after the last seen
};
std::string_view to_string(WatchUpdate::Kind kind);

}  // namespace mobike::platform::etcd
