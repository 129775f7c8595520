#include "platform/etcd_json.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <unordered_set>
#include <utility>

#include <nlohmann/json.hpp>

namespace mobike::platform::etcd {
namespace {

using json = nlohmann::json;

constexpr std::string_view kBase64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::int8_t, 256> base64_values() {
  std::array<std::int8_t, 256> values{};
  for (auto& v : values) v = -1;
  for (std::size_t i = 0; i < kBase64Alphabet.size(); ++i)
    values[static_cast<unsigned char>(kBase64Alphabet[i])] = static_cast<std::int8_t>(i);
  return values;
}
constexpr auto kBase64Values = base64_values();

Error malformed(std::string message) { return Error{.kind = Error::Kind::kMalformed, .message = std::move(message)}; }

// The start of a body for an error message: printable ASCII only, at most 120 octets.
std::string snippet(std::string_view body) {
  std::string out;
  for (char c : body.substr(0, 120)) out += (c >= 0x20 && c < 0x7f) ? c : '.';
  while (!out.empty() && (out.back() == ' ' || out.back() == '.')) out.pop_back();
  if (body.size() > 120) out += "...";
  return out;
}

std::optional<json> parse_json(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

std::string join(std::string_view path, std::string_view name) {
  if (path.empty()) return std::string(name);
  std::string out(path);
  out += '.';
  out += name;
  return out;
}

std::string indexed(std::string_view path, std::size_t i) { return std::string(path) + "[" + std::to_string(i) + "]"; }

// Typed reads of JSON fields; the first problem is kept (with the field's path) and every
// read after it returns a default, so a decoder reads on and checks failed() once.
class Decoder {
 public:
  bool failed() const { return !error_.empty(); }
  Error error() const { return malformed(error_); }

  void fail(std::string_view path, std::string_view what) {
    if (error_.empty()) error_ = std::string(path) + ": " + std::string(what);
  }

  // The member `name` of the object `obj`, nullptr when absent.
  const json* member(const json& obj, const char* name) {
    auto it = obj.find(name);
    return it == obj.end() ? nullptr : &*it;
  }

  const json* object(const json& obj, const char* name, std::string_view path, bool required) {
    const json* m = member(obj, name);
    if (m == nullptr) {
      if (required) fail(join(path, name), "missing");
      return nullptr;
    }
    if (!m->is_object()) {
      fail(join(path, name), std::string("expected an object, got ") + m->type_name());
      return nullptr;
    }
    return m;
  }

  const json* array(const json& obj, const char* name, std::string_view path) {
    const json* m = member(obj, name);
    if (m == nullptr) return nullptr;
    if (!m->is_array()) {
      fail(join(path, name), std::string("expected an array, got ") + m->type_name());
      return nullptr;
    }
    return m;
  }

  std::int64_t i64(const json& obj, const char* name, std::string_view path) {
    const json* m = member(obj, name);
    if (m == nullptr) return 0;
    if (m->is_string()) {
      if (auto v = parse_int64(m->get_ref<const std::string&>())) return *v;
      fail(join(path, name), "'" + snippet(m->get_ref<const std::string&>()) + "' is not an int64");
      return 0;
    }
    if (m->is_number_unsigned()) {
      if (m->get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        return static_cast<std::int64_t>(m->get<std::uint64_t>());
      fail(join(path, name), "out of int64 range");
      return 0;
    }
    if (m->is_number_integer()) return m->get<std::int64_t>();
    fail(join(path, name), std::string("expected an int64 (string), got ") + m->type_name());
    return 0;
  }

  std::uint64_t u64(const json& obj, const char* name, std::string_view path) {
    const json* m = member(obj, name);
    if (m == nullptr) return 0;
    if (m->is_string()) {
      const auto& s = m->get_ref<const std::string&>();
      std::uint64_t v = 0;
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (!s.empty() && ec == std::errc() && end == s.data() + s.size()) return v;
      fail(join(path, name), "'" + snippet(s) + "' is not a uint64");
      return 0;
    }
    if (m->is_number_unsigned()) return m->get<std::uint64_t>();
    fail(join(path, name), std::string("expected a uint64 (string), got ") + m->type_name());
    return 0;
  }

  bool boolean(const json& obj, const char* name, std::string_view path) {
    const json* m = member(obj, name);
    if (m == nullptr) return false;
    if (!m->is_boolean()) {
      fail(join(path, name), std::string("expected a boolean, got ") + m->type_name());
      return false;
    }
    return m->get<bool>();
  }

  std::string text(const json& obj, const char* name, std::string_view path) {
    const json* m = member(obj, name);
    if (m == nullptr) return {};
    if (!m->is_string()) {
      fail(join(path, name), std::string("expected a string, got ") + m->type_name());
      return {};
    }
    return m->get<std::string>();
  }

  // base64 octets.
  std::string bytes(const json& obj, const char* name, std::string_view path) {
    const json* m = member(obj, name);
    if (m == nullptr) return {};
    if (!m->is_string()) {
      fail(join(path, name), std::string("expected base64 (string), got ") + m->type_name());
      return {};
    }
    auto decoded = base64_decode(m->get_ref<const std::string&>());
    if (!decoded) {
      fail(join(path, name), "'" + snippet(m->get_ref<const std::string&>()) + "' is not base64");
      return {};
    }
    return std::move(*decoded);
  }

  ResponseHeader header(const json& obj, std::string_view path, bool required) {
    ResponseHeader h;
    const json* o = object(obj, "header", path, required);
    if (o == nullptr) return h;
    std::string p = join(path, "header");
    h.cluster_id = u64(*o, "cluster_id", p);
    h.member_id = u64(*o, "member_id", p);
    h.revision = i64(*o, "revision", p);
    h.raft_term = u64(*o, "raft_term", p);
    return h;
  }

  KeyValue key_value(const json& j, std::string_view path) {
    KeyValue kv;
    if (!j.is_object()) {
      fail(path, std::string("expected an object, got ") + j.type_name());
      return kv;
    }
    kv.key = bytes(j, "key", path);
    kv.value = bytes(j, "value", path);
    kv.create_revision = i64(j, "create_revision", path);
    kv.mod_revision = i64(j, "mod_revision", path);
    kv.version = i64(j, "version", path);
    kv.lease = i64(j, "lease", path);
    return kv;
  }

  std::vector<KeyValue> key_values(const json& obj, const char* name, std::string_view path) {
    std::vector<KeyValue> out;
    const json* a = array(obj, name, path);
    if (a == nullptr) return out;
    out.reserve(a->size());
    for (std::size_t i = 0; i < a->size() && !failed(); ++i)
      out.push_back(key_value((*a)[i], indexed(join(path, name), i)));
    return out;
  }

  RangeResult range(const json& obj, std::string_view path, bool header_required) {
    RangeResult r;
    r.header = header(obj, path, header_required);
    r.kvs = key_values(obj, "kvs", path);
    r.count = i64(obj, "count", path);
    r.more = boolean(obj, "more", path);
    return r;
  }

  PutResult put(const json& obj, std::string_view path, bool header_required) {
    PutResult r;
    r.header = header(obj, path, header_required);
    if (const json* prev = object(obj, "prev_kv", path, false)) r.prev_kv = key_value(*prev, join(path, "prev_kv"));
    return r;
  }

  DeleteResult del(const json& obj, std::string_view path, bool header_required) {
    DeleteResult r;
    r.header = header(obj, path, header_required);
    r.deleted = i64(obj, "deleted", path);
    r.prev_kvs = key_values(obj, "prev_kvs", path);
    return r;
  }

  WatchEvent event(const json& j, std::string_view path) {
    WatchEvent e;
    if (!j.is_object()) {
      fail(path, std::string("expected an object, got ") + j.type_name());
      return e;
    }
    if (const json* type = member(j, "type")) {
      if (type->is_string() && type->get_ref<const std::string&>() == "PUT") {
        e.type = WatchEvent::Type::kPut;
      } else if (type->is_string() && type->get_ref<const std::string&>() == "DELETE") {
        e.type = WatchEvent::Type::kDelete;
      } else if (type->is_number_integer() && (type->get<std::int64_t>() == 0 || type->get<std::int64_t>() == 1)) {
        e.type = type->get<std::int64_t>() == 0 ? WatchEvent::Type::kPut : WatchEvent::Type::kDelete;
      } else {
        fail(join(path, "type"), "unknown event type " + snippet(type->dump()));
      }
    }
    if (const json* kv = object(j, "kv", path, true)) e.kv = key_value(*kv, join(path, "kv"));
    if (const json* prev = object(j, "prev_kv", path, false)) e.prev_kv = key_value(*prev, join(path, "prev_kv"));
    return e;
  }

 private:
  std::string error_;
};

// The answer as a JSON object, or why it is none.
Expected<json, Error> parse_object(std::string_view body) {
  auto j = parse_json(body);
  if (!j) return unexpected(malformed("not JSON: '" + snippet(body) + "'"));
  if (!j->is_object()) return unexpected(malformed(std::string("expected a JSON object, got ") + j->type_name()));
  return std::move(*j);
}

// --- encoding

std::string int64_text(std::int64_t v) { return std::to_string(v); }

json range_json(const RangeRequest& r) {
  json j = {{"key", base64_encode(r.key)}};
  if (!r.range_end.empty()) j["range_end"] = base64_encode(r.range_end);
  if (r.limit != 0) j["limit"] = int64_text(r.limit);
  if (r.revision != 0) j["revision"] = int64_text(r.revision);
  if (r.keys_only) j["keys_only"] = true;
  if (r.count_only) j["count_only"] = true;
  return j;
}

json put_json(const PutRequest& r) {
  json j = {{"key", base64_encode(r.key)}, {"value", base64_encode(r.value)}};
  if (r.lease != 0) j["lease"] = int64_text(r.lease);
  if (r.prev_kv) j["prev_kv"] = true;
  return j;
}

json delete_json(const DeleteRequest& r) {
  json j = {{"key", base64_encode(r.key)}};
  if (!r.range_end.empty()) j["range_end"] = base64_encode(r.range_end);
  if (r.prev_kv) j["prev_kv"] = true;
  return j;
}

const char* target_name(Compare::Target t) {
  switch (t) {
    case Compare::Target::kVersion: return "VERSION";
    case Compare::Target::kCreateRevision: return "CREATE";
    case Compare::Target::kModRevision: return "MOD";
    case Compare::Target::kValue: return "VALUE";
    case Compare::Target::kLease: return "LEASE";
  }
  return "MOD";
}

// The field of the compare's target_union for each target.
const char* target_field(Compare::Target t) {
  switch (t) {
    case Compare::Target::kVersion: return "version";
    case Compare::Target::kCreateRevision: return "create_revision";
    case Compare::Target::kModRevision: return "mod_revision";
    case Compare::Target::kValue: return "value";
    case Compare::Target::kLease: return "lease";
  }
  return "mod_revision";
}

const char* result_name(Compare::Result r) {
  switch (r) {
    case Compare::Result::kEqual: return "EQUAL";
    case Compare::Result::kNotEqual: return "NOT_EQUAL";
    case Compare::Result::kGreater: return "GREATER";
    case Compare::Result::kLess: return "LESS";
  }
  return "EQUAL";
}

json compare_json(const Compare& c) {
  // The union field is always written, also at 0: "create_revision == 0" must say so.
  json j = {{"key", base64_encode(c.key)}, {"target", target_name(c.target)}, {"result", result_name(c.result)}};
  if (c.target == Compare::Target::kValue)
    j[target_field(c.target)] = base64_encode(c.value);
  else
    j[target_field(c.target)] = int64_text(c.number);
  if (!c.range_end.empty()) j["range_end"] = base64_encode(c.range_end);
  return j;
}

json op_json(const Op& op) {
  switch (op.kind) {
    case Op::Kind::kRange: return {{"request_range", range_json(op.range)}};
    case Op::Kind::kPut: return {{"request_put", put_json(op.put)}};
    case Op::Kind::kDelete: return {{"request_delete_range", delete_json(op.del)}};
  }
  return json::object();
}

json ops_json(std::span<const Op> ops) {
  json a = json::array();
  for (const auto& op : ops) a.push_back(op_json(op));
  return a;
}

}  // namespace

// --------------------------------------------------------------------------- base64, int64

std::string base64_encode(std::string_view octets) {
  std::string out;
  out.reserve((octets.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= octets.size(); i += 3) {
    std::uint32_t v = (std::uint32_t{static_cast<unsigned char>(octets[i])} << 16) |
                      (std::uint32_t{static_cast<unsigned char>(octets[i + 1])} << 8) |
                      std::uint32_t{static_cast<unsigned char>(octets[i + 2])};
    out += kBase64Alphabet[(v >> 18) & 63];
    out += kBase64Alphabet[(v >> 12) & 63];
    out += kBase64Alphabet[(v >> 6) & 63];
    out += kBase64Alphabet[v & 63];
  }
  std::size_t rest = octets.size() - i;
  if (rest > 0) {
    std::uint32_t v = std::uint32_t{static_cast<unsigned char>(octets[i])} << 16;
    if (rest == 2) v |= std::uint32_t{static_cast<unsigned char>(octets[i + 1])} << 8;
    out += kBase64Alphabet[(v >> 18) & 63];
    out += kBase64Alphabet[(v >> 12) & 63];
    out += rest == 2 ? kBase64Alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::size_t pad = 0;
  if (!text.empty() && text.back() == '=') pad = (text.size() >= 2 && text[text.size() - 2] == '=') ? 2 : 1;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      char c = text[i + k];
      if (last && k >= 4 - pad) {
        v <<= 6;  // '=' (checked by pad's computation)
        continue;
      }
      std::int8_t d = kBase64Values[static_cast<unsigned char>(c)];
      if (d < 0) return std::nullopt;  // also '=' anywhere but the end
      v = (v << 6) | static_cast<std::uint32_t>(d);
    }
    out += static_cast<char>((v >> 16) & 0xff);
    if (!last || pad < 2) out += static_cast<char>((v >> 8) & 0xff);
    if (!last || pad < 1) out += static_cast<char>(v & 0xff);
  }
  return out;
}

std::optional<std::int64_t> parse_int64(std::string_view text) {
  if (text.empty() || text.front() == '+') return std::nullopt;
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

// --------------------------------------------------------------------------- requests

std::string encode_range(const RangeRequest& request) { return range_json(request).dump(); }
std::string encode_put(const PutRequest& request) { return put_json(request).dump(); }
std::string encode_delete(const DeleteRequest& request) { return delete_json(request).dump(); }

std::string encode_txn(std::span<const Compare> compares, std::span<const Op> success, std::span<const Op> failure) {
  json j = json::object();
  if (!compares.empty()) {
    json c = json::array();
    for (const auto& cmp : compares) c.push_back(compare_json(cmp));
    j["compare"] = std::move(c);
  }
  if (!success.empty()) j["success"] = ops_json(success);
  if (!failure.empty()) j["failure"] = ops_json(failure);
  return j.dump();
}

std::string encode_lease_grant(std::int64_t ttl_seconds) { return json{{"TTL", int64_text(ttl_seconds)}}.dump(); }
std::string encode_lease_id(std::int64_t id) { return json{{"ID", int64_text(id)}}.dump(); }

std::string encode_watch_create(const WatchRequest& request) {
  json c = {{"key", base64_encode(request.key)}};
  if (!request.range_end.empty()) c["range_end"] = base64_encode(request.range_end);
  if (request.start_revision != 0) c["start_revision"] = int64_text(request.start_revision);
  if (request.prev_kv) c["prev_kv"] = true;
  if (request.progress_notify) c["progress_notify"] = true;
  return json{{"create_request", std::move(c)}}.dump();
}

// --------------------------------------------------------------------------- answers

Expected<RangeResult, Error> decode_range(std::string_view body) {
  auto j = parse_object(body);
  if (!j) return unexpected(j.error());
  Decoder d;
  RangeResult r = d.range(*j, "", true);
  if (d.failed()) return unexpected(d.error());
  return r;
}

Expected<PutResult, Error> decode_put(std::string_view body) {
  auto j = parse_object(body);
  if (!j) return unexpected(j.error());
  Decoder d;
  PutResult r = d.put(*j, "", true);
  if (d.failed()) return unexpected(d.error());
  return r;
}

Expected<DeleteResult, Error> decode_delete(std::string_view body) {
  auto j = parse_object(body);
  if (!j) return unexpected(j.error());
  Decoder d;
  DeleteResult r = d.del(*j, "", true);
  if (d.failed()) return unexpected(d.error());
  return r;
}

Expected<TxnResult, Error> decode_txn(std::string_view body) {
  auto j = parse_object(body);
  if (!j) return unexpected(j.error());
  Decoder d;
  TxnResult r;
  r.header = d.header(*j, "", true);
  r.succeeded = d.boolean(*j, "succeeded", "");
  if (const json* a = d.array(*j, "responses", "")) {
    for (std::size_t i = 0; i < a->size() && !d.failed(); ++i) {
      const json& item = (*a)[i];
      std::string path = indexed("responses", i);
      if (!item.is_object()) {
        d.fail(path, std::string("expected an object, got ") + item.type_name());
        break;
      }
      OpResult op;
      if (const json* o = d.object(item, "response_range", path, false)) {
        op.kind = Op::Kind::kRange;
        op.range = d.range(*o, join(path, "response_range"), false);
      } else if (const json* o = d.object(item, "response_put", path, false)) {
        op.kind = Op::Kind::kPut;
        op.put = d.put(*o, join(path, "response_put"), false);
      } else if (const json* o = d.object(item, "response_delete_range", path, false)) {
        op.kind = Op::Kind::kDelete;
        op.del = d.del(*o, join(path, "response_delete_range"), false);
      } else {
        d.fail(path, "no response_range, response_put or response_delete_range");
      }
      r.responses.push_back(std::move(op));
    }
  }
  if (d.failed()) return unexpected(d.error());
  return r;
}

Expected<LeaseGrant, Error> decode_lease_grant(std::string_view body) {
  auto j = parse_object(body);
  if (!j) return unexpected(j.error());
  Decoder d;
  d.header(*j, "", true);
  LeaseGrant g{.id = d.i64(*j, "ID", ""), .ttl = d.i64(*j, "TTL", "")};
  // LeaseGrantResponse has an error string of its own besides the gRPC status.
  std::string err = d.text(*j, "error", "");
  if (d.failed()) return unexpected(d.error());
  if (!err.empty()) return unexpected(Error{.kind = Error::Kind::kEtcd, .message = err, .http_status = 200});
  if (g.id == 0) return unexpected(malformed("lease grant without an ID"));
  return g;
}

Expected<ResponseHeader, Error> decode_lease_revoke(std::string_view body) {
  auto j = parse_object(body);
  if (!j) return unexpected(j.error());
  Decoder d;
  ResponseHeader h = d.header(*j, "", true);
  if (d.failed()) return unexpected(d.error());
  return h;
}

Expected<MemberStatus, Error> decode_status(std::string_view body) {
  auto j = parse_object(body);
  if (!j) return unexpected(j.error());
  Decoder d;
  MemberStatus st;
  // The names of StatusResponse's fields are camelCase in etcd's proto, unlike the rest.
  st.header = d.header(*j, "", true);
  st.version = d.text(*j, "version", "");
  st.leader = d.u64(*j, "leader", "");
  st.raft_index = d.u64(*j, "raftIndex", "");
  st.raft_term = d.u64(*j, "raftTerm", "");
  st.db_size = d.i64(*j, "dbSize", "");
  if (d.failed()) return unexpected(d.error());
  return st;
}

Expected<std::int64_t, Error> decode_lease_keepalive(std::string_view body) {
  JsonObjectSplitter splitter;
  splitter.feed(body);
  auto first = splitter.next();
  if (!first) {
    if (splitter.error()) return unexpected(malformed(*splitter.error()));
    return unexpected(malformed("no keepalive answer in '" + snippet(body) + "'"));
  }
  auto j = parse_object(*first);
  if (!j) return unexpected(j.error());
  if (j->contains("error")) return unexpected(decode_error(200, *first));
  Decoder d;
  const json* result = d.object(*j, "result", "", true);
  if (result == nullptr) return unexpected(d.error());
  d.header(*result, "result", true);
  std::int64_t id = d.i64(*result, "ID", "result");
  std::int64_t ttl = d.i64(*result, "TTL", "result");
  if (d.failed()) return unexpected(d.error());
  if (ttl <= 0)
    return unexpected(Error{.kind = Error::Kind::kLeaseNotFound,
                            .message = "lease " + std::to_string(id) + " has expired or was revoked"});
  return ttl;
}

Error decode_error(int http_status, std::string_view body) {
  Error e{.kind = Error::Kind::kHttpStatus, .http_status = http_status};
  auto j = parse_json(body);
  const json* err = (j && j->is_object()) ? &*j : nullptr;
  auto it = err ? err->find("error") : json::const_iterator();
  if (err == nullptr || it == err->end()) {
    e.message = body.empty() ? "empty answer" : "answer '" + snippet(body) + "'";
    return e;
  }
  std::string message;
  std::int64_t code = 0;
  if (it->is_string()) {
    // Unary calls: {"error": "...", "message": "...", "code": N}.
    message = it->get<std::string>();
    auto m = err->find("message");
    if (m != err->end() && m->is_string() && !m->get_ref<const std::string&>().empty()) message = m->get<std::string>();
    auto c = err->find("code");
    if (c != err->end() && c->is_number_integer()) code = c->get<std::int64_t>();
  } else if (it->is_object()) {
    // Streams: {"error": {"grpc_code": N, "http_code": N, "message": "...", "http_status": "..."}}.
    auto m = it->find("message");
    if (m != it->end() && m->is_string()) message = m->get<std::string>();
    auto c = it->find("grpc_code");
    if (c != it->end() && c->is_number_integer()) code = c->get<std::int64_t>();
  } else {
    e.message = body.empty() ? "empty answer" : "answer '" + snippet(body) + "'";
    return e;
  }
  if (message.empty()) message = "(no message)";
  e.kind = message.find("requested lease not found") != std::string::npos ? Error::Kind::kLeaseNotFound
                                                                          : Error::Kind::kEtcd;
  e.message = std::move(message);
  e.grpc_code = (code >= 0 && code <= 255) ? static_cast<int>(code) : 0;
  return e;
}

bool is_no_leader(const Error& error) {
  return error.kind == Error::Kind::kEtcd && error.message.find("no leader") != std::string::npos;
}

// --------------------------------------------------------------------------- streams

void JsonObjectSplitter::feed(std::string_view bytes) {
  if (error_) return;
  // Drop what was consumed before growing the buffer again.
  if (head_ > 0 && head_ >= buf_.size() / 2) {
    buf_.erase(0, head_);
    scan_ -= head_;
    start_ -= std::min(start_, head_);
    head_ = 0;
  }
  buf_.append(bytes);
}

std::optional<std::string> JsonObjectSplitter::next() {
  if (error_) return std::nullopt;
  while (scan_ < buf_.size()) {
    char c = buf_[scan_];
    if (depth_ == 0) {
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        head_ = ++scan_;
        continue;
      }
      if (c != '{') {
        error_ = "unexpected '" + snippet(std::string_view(&c, 1)) + "' between JSON objects at '" +
                 snippet(std::string_view(buf_).substr(scan_)) + "'";
        return std::nullopt;
      }
      start_ = scan_;
      depth_ = 1;
      ++scan_;
      continue;
    }
    ++scan_;
    if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      continue;
    }
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if (c == '}' || c == ']') {
      if (--depth_ == 0) {
        std::string object = buf_.substr(start_, scan_ - start_);
        head_ = scan_;
        if (head_ == buf_.size()) {
          buf_.clear();
          head_ = scan_ = start_ = 0;
        }
        return object;
      }
    }
  }
  if (depth_ > 0 && scan_ - start_ > max_object_bytes_) {
    error_ = "a JSON object larger than " + std::to_string(max_object_bytes_) + " octets";
    return std::nullopt;
  }
  if (depth_ == 0) {
    buf_.clear();
    head_ = scan_ = start_ = 0;
  }
  return std::nullopt;
}

void JsonObjectSplitter::reset() {
  buf_.clear();
  head_ = scan_ = start_ = 0;
  depth_ = 0;
  in_string_ = escape_ = false;
  error_.reset();
}

Expected<WatchResponse, Error> decode_watch_message(std::string_view object) {
  auto j = parse_object(object);
  if (!j) return unexpected(j.error());
  if (j->contains("error")) return unexpected(decode_error(200, object));
  Decoder d;
  const json* result = d.object(*j, "result", "", true);
  if (result == nullptr) return unexpected(d.error());
  WatchResponse w;
  w.header = d.header(*result, "result", true);
  w.watch_id = d.i64(*result, "watch_id", "result");
  w.created = d.boolean(*result, "created", "result");
  w.canceled = d.boolean(*result, "canceled", "result");
  w.compact_revision = d.i64(*result, "compact_revision", "result");
  w.cancel_reason = d.text(*result, "cancel_reason", "result");
  d.boolean(*result, "fragment", "result");
  if (const json* events = d.array(*result, "events", "result")) {
    w.events.reserve(events->size());
    for (std::size_t i = 0; i < events->size() && !d.failed(); ++i)
      w.events.push_back(d.event((*events)[i], indexed("result.events", i)));
  }
  if (d.failed()) return unexpected(d.error());
  return w;
}

WatchStream::WatchStream(WatchRequest request)
    : request_(std::move(request)), next_revision_(request_.start_revision) {}

std::string WatchStream::create_body() const {
  WatchRequest r = request_;
  r.start_revision = next_revision_;
  return encode_watch_create(r);
}

void WatchStream::begin_connection() {
  splitter_.reset();
  created_ = false;
  ++connections_;
}

Expected<void, Error> WatchStream::feed(std::string_view bytes, std::vector<WatchUpdate>& out) {
  if (ended_) return {};
  splitter_.feed(bytes);
  while (auto object = splitter_.next()) {
    auto msg = decode_watch_message(*object);
    if (!msg) return unexpected(msg.error());
    WatchUpdate u;
    u.revision = msg->header.revision;
    if (msg->canceled) {
      ended_ = true;
      if (msg->compact_revision > 0) {
        u.kind = WatchUpdate::Kind::kCompacted;
        u.compact_revision = msg->compact_revision;
        u.reason = "revision " + std::to_string(next_revision_) +
                   " is compacted (oldest kept: " + std::to_string(msg->compact_revision) + ")";
      } else {
        u.kind = WatchUpdate::Kind::kCanceled;
        u.reason = msg->cancel_reason.empty() ? "canceled by etcd" : msg->cancel_reason;
      }
      out.push_back(std::move(u));
      return {};
    }
    if (msg->created) {
      created_ = true;
      if (next_revision_ == 0) next_revision_ = msg->header.revision + 1;
      u.kind = WatchUpdate::Kind::kCreated;
      u.resumed = connections_ > 1;
      out.push_back(std::move(u));
      continue;
    }
    if (!msg->events.empty()) {
      // Only the events say how far this watch got: the header's revision is the store's,
      // ahead of events still being replayed from history.
      next_revision_ = std::max(next_revision_, msg->events.back().kv.mod_revision + 1);
      u.kind = WatchUpdate::Kind::kEvents;
      u.events = std::move(msg->events);
      out.push_back(std::move(u));
      continue;
    }
    // etcd sends progress only to a watch that has caught up with the store.
    if (msg->header.revision > 0) next_revision_ = std::max(next_revision_, msg->header.revision + 1);
    u.kind = WatchUpdate::Kind::kProgress;
    out.push_back(std::move(u));
  }
  if (splitter_.error()) return unexpected(malformed("watch stream: " + *splitter_.error()));
  return {};
}

// --------------------------------------------------------------------------- batches

std::vector<std::size_t> split_put_batch(std::span<const PutRequest> puts, std::size_t max_ops, std::size_t max_bytes) {
  constexpr std::size_t kOverhead = 16;  // tags, lengths and the lease of one put in protobuf
  max_ops = std::max<std::size_t>(max_ops, 1);
  std::vector<std::size_t> sizes;
  std::unordered_set<std::string_view> keys;
  std::size_t count = 0, bytes = 0;
  for (const auto& put : puts) {
    std::size_t size = put.key.size() + put.value.size() + kOverhead;
    if (count > 0 && (count == max_ops || bytes + size > max_bytes || keys.contains(put.key))) {
      sizes.push_back(count);
      keys.clear();
      count = bytes = 0;
    }
    keys.insert(put.key);
    ++count;
    bytes += size;
  }
  if (count > 0) sizes.push_back(count);
  return sizes;
}

}  // namespace mobike::platform::etcd
