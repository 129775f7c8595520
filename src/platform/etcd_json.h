// The JSON of etcd's v3 gateway (POST /v3/...), as pure functions: request bodies from the
// values of etcd_types.h, and answers back to them. No I/O, so every quirk is unit-tested:
//
//   - keys and values are base64 (standard alphabet, padded);
//   - int64 fields (revisions, lease IDs, TTLs, counts) are JSON strings ("5"); plain JSON
//     integers are accepted too, as protobuf's JSON mapping allows;
//   - a field at its default value is left out: no "succeeded" in a failed txn, no "kvs"
//     in an empty range, no "revision" when it is 0, no "type" in a PUT event;
//   - streams (watch, lease keepalive) send one object per message, {"result": ...} or
//     {"error": ...}, which may arrive split over reads or several in one read;
//   - errors are {"error": "...", "message": "...", "code": <gRPC code>} with an HTTP
//     status derived from the code (400, 404, 503, ...).
//
// Every decoder checks types and base64 and returns a kMalformed error for anything else;
// a missing "header" in an answer is malformed too (etcd always sends one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/expected.h"
#include "platform/etcd_types.h"

namespace mobike::platform::etcd {

std::string base64_encode(std::string_view octets);
// nullopt unless `text` is padded standard base64 (A-Z a-z 0-9 + /, length a multiple of 4).
std::optional<std::string> base64_decode(std::string_view text);

// Signed decimal without sign '+', spaces or leading junk, in int64 range.
std::optional<std::int64_t> parse_int64(std::string_view text);

// --------------------------------------------------------------------------- requests

std::string encode_range(const RangeRequest& request);    // /v3/kv/range
std::string encode_put(const PutRequest& request);        // /v3/kv/put
std::string encode_delete(const DeleteRequest& request);  // /v3/kv/deleterange
std::string encode_txn(std::span<const Compare> compares, std::span<const Op> success,
                       std::span<const Op> failure);           // /v3/kv/txn
std::string encode_lease_grant(std::int64_t ttl_seconds);      // /v3/lease/grant
std::string encode_lease_id(std::int64_t id);                  // /v3/lease/revoke, /keepalive
std::string encode_watch_create(const WatchRequest& request);  // /v3/watch

// --------------------------------------------------------------------------- answers (HTTP 200)

Expected<RangeResult, Error> decode_range(std::string_view body);
Expected<PutResult, Error> decode_put(std::string_view body);
Expected<DeleteResult, Error> decode_delete(std::string_view body);
Expected<TxnResult, Error> decode_txn(std::string_view body);
Expected<LeaseGrant, Error> decode_lease_grant(std::string_view body);
Expected<ResponseHeader, Error> decode_lease_revoke(std::string_view body);
Expected<MemberStatus, Error> decode_status(std::string_view body);  // /v3/maintenance/status
// The remaining TTL from the first message of the keepalive stream; kLeaseNotFound when
// the lease is gone (etcd answers with TTL 0, i.e. no "TTL" at all).
Expected<std::int64_t, Error> decode_lease_keepalive(std::string_view body);

// An answer with an HTTP status other than 200 (or an {"error": ...} object in a stream):
// kEtcd with etcd's message and gRPC code, kLeaseNotFound for "requested lease not found",
// kHttpStatus when the body is no etcd error (a proxy's page, "404 page not found").
Error decode_error(int http_status, std::string_view body);

// etcd's "no leader" refusal: the member answered without looking at the request, so
// the request may go to another member.
bool is_no_leader(const Error& error);

// --------------------------------------------------------------------------- streams

// Cuts a byte stream into its top-level JSON objects, whatever the read boundaries: an
// object split over reads comes out once it is complete, several in one read one by one.
// Whitespace between objects is skipped; anything else there, or an object larger than
// max_object_bytes, is an error (and ends the stream).
class JsonObjectSplitter {
 public:
  explicit JsonObjectSplitter(std::size_t max_object_bytes = std::size_t{64} << 20)
      : max_object_bytes_(max_object_bytes) {}

  void feed(std::string_view bytes);
  // The next complete object; nullopt when there is none yet, or after an error.
  std::optional<std::string> next();
  const std::optional<std::string>& error() const { return error_; }
  // Bytes held for an object not yet complete.
  std::size_t pending() const { return buf_.size() - head_; }
  void reset();

 private:
  std::string buf_;
  std::size_t head_ = 0;   // consumed up to here
  std::size_t scan_ = 0;   // scanned up to here (inside the current object when depth_ > 0)
  std::size_t start_ = 0;  // where the current object starts
  int depth_ = 0;
  bool in_string_ = false;
  bool escape_ = false;
  std::size_t max_object_bytes_;
  std::optional<std::string> error_;
};

// One message of a watch stream, as etcd sends it.
struct WatchResponse {
  ResponseHeader header;
  std::int64_t watch_id = 0;
  bool created = false;
  bool canceled = false;
  std::int64_t compact_revision = 0;
  std::string cancel_reason;
  std::vector<WatchEvent> events;
};
// {"result": WatchResponse}; {"error": ...} is an error as decode_error() gives it.
Expected<WatchResponse, Error> decode_watch_message(std::string_view object);

// What a watch knows across its connections: it turns the bytes of each connection's
// answer into WatchUpdates and remembers the revision to resume from, which is where
// the next connection's create_request starts:
//   - the request's start_revision until something is seen (0: from now);
//   - after "created" of a watch from now: the revision after the store's at creation;
//   - after events: the revision after the last event's (every event of one revision
//     comes in one message);
//   - after a progress notice: the revision after the notice's.
// Compaction or a cancel ends the watch (ended()): resuming would skip events.
class WatchStream {
 public:
  explicit WatchStream(WatchRequest request);

  // The body of the next connection's create_request.
  std::string create_body() const;
  // A new connection starts: forgets the bytes of the last one.
  void begin_connection();
  // Bytes of the current connection's answer; the updates they complete go to `out`. An
  // error (malformed stream, an error object from etcd) means the connection is useless.
  Expected<void, Error> feed(std::string_view bytes, std::vector<WatchUpdate>& out);

  std::int64_t next_revision() const { return next_revision_; }
  bool ended() const { return ended_; }
  bool created() const { return created_; }  // the current connection's watch exists
  const WatchRequest& request() const { return request_; }

 private:
  WatchRequest request_;
  JsonObjectSplitter splitter_;
  std::int64_t next_revision_ = 0;
  int connections_ = 0;
  bool created_ = false;
  bool ended_ = false;
};

// --------------------------------------------------------------------------- batches

// How a batch of puts is cut into transactions etcd accepts, in order: at most max_ops
// operations each (etcd's --max-txn-ops, 128 by default), at most about max_bytes of keys
// and values each (its --max-request-bytes, 1.5 MiB by default; a single larger put goes
// alone), and no key twice in one (etcd refuses a txn that puts a key twice). The sizes
// of the consecutive transactions.
std::vector<std::size_t> split_put_batch(std::span<const PutRequest> puts, std::size_t max_ops, std::size_t max_bytes);

}  // namespace mobike::platform::etcd
