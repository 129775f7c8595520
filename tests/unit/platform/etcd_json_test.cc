#include "platform/etcd_json.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace mobike::platform::etcd {
namespace {

using namespace std::string_literals;

// The header etcd 3.4 sends, with revision `rev` (as in its answers, a string).
std::string header(int rev) {
  return R"("header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":")" +
         std::to_string(rev) + R"(","raft_term":"2"})";
}

// ----------------------------------------------------------------------- base64, int64, prefixes

TEST(EtcdBase64, EncodesRfc4648Vectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("\xff\xfe\x00"s), "//4A");
}

TEST(EtcdBase64, RoundTripsEveryOctetAndLength) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (std::size_t len = 0; len <= all.size(); len += 7) {
    std::string s = all.substr(all.size() - len);
    auto back = base64_decode(base64_encode(s));
    ASSERT_TRUE(back) << len;
    EXPECT_EQ(*back, s);
  }
}

TEST(EtcdBase64, RejectsWhatEtcdNeverSends) {
  for (std::string_view bad :
       {"Zg=", "Zg", "Zm9", "Z===", "====", "Zg=a", "Zm=v", "Zm9v!A==", "Zm9v-_==", "Zm9v\nYmFy", "Zm 9v", "=Zm9"}) {
    EXPECT_FALSE(base64_decode(bad)) << bad;
  }
  EXPECT_EQ(base64_decode(""), "");
}

TEST(EtcdInt64, ParsesDecimalStringsOnly) {
  EXPECT_EQ(parse_int64("0"), 0);
  EXPECT_EQ(parse_int64("-5"), -5);
  EXPECT_EQ(parse_int64("9223372036854775807"), INT64_MAX);
  EXPECT_EQ(parse_int64("-9223372036854775808"), INT64_MIN);
  for (std::string_view bad : {"", "+1", " 1", "1 ", "9223372036854775808", "1.5", "0x10", "1e3", "-"})
    EXPECT_FALSE(parse_int64(bad)) << bad;
}

TEST(EtcdPrefix, RangeEndIncrementsTheLastOctetBelowFf) {
  EXPECT_EQ(prefix_range_end("sas/"), "sas0");
  EXPECT_EQ(prefix_range_end("a"), "b");
  EXPECT_EQ(prefix_range_end("a\xff"), "b");
  EXPECT_EQ(prefix_range_end("a\xfe\xff\xff"), "a\xff");
  EXPECT_EQ(prefix_range_end("\xff\xff"), "\0"s);
  EXPECT_EQ(prefix_range_end(""), "\0"s);
  EXPECT_EQ(prefix_range_start(""), "\0"s);
  EXPECT_EQ(prefix_range_start("x/"), "x/");
}

// ----------------------------------------------------------------------- requests

TEST(EtcdEncode, PutHasBase64AndInt64AsString) {
  EXPECT_EQ(encode_put({.key = "foo", .value = "bar", .lease = 7587862090474455555}),
            R"({"key":"Zm9v","lease":"7587862090474455555","value":"YmFy"})");
  EXPECT_EQ(encode_put({.key = "k", .value = "", .prev_kv = true}), R"({"key":"aw==","prev_kv":true,"value":""})");
}

TEST(EtcdEncode, RangeAndDeleteLeaveDefaultsOut) {
  EXPECT_EQ(encode_range({.key = "a"}), R"({"key":"YQ=="})");
  EXPECT_EQ(encode_range({.key = "a", .range_end = "b", .limit = 10, .revision = 5, .count_only = true}),
            R"({"count_only":true,"key":"YQ==","limit":"10","range_end":"Yg==","revision":"5"})");
  EXPECT_EQ(encode_delete({.key = "a", .range_end = "b", .prev_kv = true}),
            R"({"key":"YQ==","prev_kv":true,"range_end":"Yg=="})");
}

TEST(EtcdEncode, TxnWritesEveryCompareTargetAndZero) {
  std::vector<Compare> compares = {
      Compare::mod_revision("o", Compare::Result::kEqual, 0),
      Compare::create_revision("o", Compare::Result::kNotEqual, 3),
      Compare::version("o", Compare::Result::kGreater, 1),
      Compare::value_is("o", Compare::Result::kLess, "v"),
      Compare::lease("o", Compare::Result::kEqual, 9),
  };
  std::vector<Op> success = {Op::put_kv("o", "x", 9), Op::del_key("p"), Op::get_prefix("q/")};
  std::vector<Op> failure = {Op::get("o")};
  EXPECT_EQ(encode_txn(compares, success, failure),
            R"({"compare":[)"
            R"({"key":"bw==","mod_revision":"0","result":"EQUAL","target":"MOD"},)"
            R"({"create_revision":"3","key":"bw==","result":"NOT_EQUAL","target":"CREATE"},)"
            R"({"key":"bw==","result":"GREATER","target":"VERSION","version":"1"},)"
            R"({"key":"bw==","result":"LESS","target":"VALUE","value":"dg=="},)"
            R"({"key":"bw==","lease":"9","result":"EQUAL","target":"LEASE"}],)"
            R"("failure":[{"request_range":{"key":"bw=="}}],)"
            R"("success":[{"request_put":{"key":"bw==","lease":"9","value":"eA=="}},)"
            R"({"request_delete_range":{"key":"cA=="}},)"
            R"({"request_range":{"key":"cS8=","range_end":"cTA="}}]})");
  EXPECT_EQ(encode_txn({}, {}, {}), "{}");
}

TEST(EtcdEncode, LeaseAndWatchBodies) {
  EXPECT_EQ(encode_lease_grant(2), R"({"TTL":"2"})");
  EXPECT_EQ(encode_lease_id(7587862090474455555), R"({"ID":"7587862090474455555"})");
  EXPECT_EQ(encode_watch_create({.key = "a"}), R"({"create_request":{"key":"YQ=="}})");
  EXPECT_EQ(encode_watch_create(
                {.key = "a", .range_end = "b", .start_revision = 12, .prev_kv = true, .progress_notify = true}),
            R"({"create_request":{"key":"YQ==","prev_kv":true,"progress_notify":true,"range_end":"Yg==",)"
            R"("start_revision":"12"}})");
}

TEST(EtcdEncode, OpFactoriesForPrefixes) {
  Op all = Op::del_prefix("");
  EXPECT_EQ(all.del.key, "\0"s);
  EXPECT_EQ(all.del.range_end, "\0"s);
  Op p = Op::get_prefix("sas/");
  EXPECT_EQ(p.range.key, "sas/");
  EXPECT_EQ(p.range.range_end, "sas0");
}

// ----------------------------------------------------------------------- answers

TEST(EtcdDecode, RangeWithKeyValues) {
  auto r = decode_range("{" + header(5) +
                        R"(,"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"4","version":"3",)"
                        R"("value":"AP8=","lease":"7587862090474455555"},{"key":"Zm9w","create_revision":"5",)"
                        R"("mod_revision":"5","version":"1"}],"count":"2"})");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->revision(), 5);
  EXPECT_EQ(r->header.cluster_id, 14841639068965178418u);
  EXPECT_EQ(r->header.raft_term, 2u);
  EXPECT_EQ(r->count, 2);
  EXPECT_FALSE(r->more);
  ASSERT_EQ(r->kvs.size(), 2u);
  EXPECT_EQ(r->kvs[0], (KeyValue{.key = "foo",
                                 .value = "\0\xff"s,
                                 .create_revision = 2,
                                 .mod_revision = 4,
                                 .version = 3,
                                 .lease = 7587862090474455555}));
  // An empty value is omitted, as every default is.
  EXPECT_EQ(r->kvs[1], (KeyValue{.key = "fop", .value = "", .create_revision = 5, .mod_revision = 5, .version = 1}));
}

TEST(EtcdDecode, EmptyRangeHasNoKvsNoCount) {
  auto r = decode_range("{" + header(3) + "}");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->kvs.empty());
  EXPECT_EQ(r->count, 0);
  EXPECT_EQ(r->revision(), 3);
}

TEST(EtcdDecode, RevisionZeroIsAbsent) {
  auto r = decode_range(R"({"header":{"cluster_id":"1","member_id":"2","raft_term":"2"}})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->revision(), 0);
}

TEST(EtcdDecode, Int64AsJsonNumberIsAccepted) {
  auto r = decode_range(R"({"header":{"revision":7},"kvs":[{"key":"YQ==","mod_revision":6}],"count":1})");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->revision(), 7);
  EXPECT_EQ(r->kvs.at(0).mod_revision, 6);
}

struct MalformedCase {
  const char* name;
  std::string body;
  const char* mentions;  // the error names the field
};

TEST(EtcdDecode, MalformedRangesAreErrorsNamingTheField) {
  const std::vector<MalformedCase> cases = {
      {"not json", "{\"header\":", "not JSON"},
      {"empty", "", "not JSON"},
      {"array", "[1,2]", "expected a JSON object"},
      {"no header", R"({"kvs":[]})", "header: missing"},
      {"header not object", R"({"header":"5"})", "header: expected an object"},
      {"revision bool", R"({"header":{"revision":true}})", "header.revision"},
      {"revision junk", R"({"header":{"revision":"12x"}})", "header.revision"},
      {"revision float", R"({"header":{"revision":1.5}})", "header.revision"},
      {"revision too big", R"({"header":{"revision":"9223372036854775808"}})", "header.revision"},
      {"revision too big as number", R"({"header":{"revision":9223372036854775808}})", "header.revision"},
      {"cluster id negative", R"({"header":{"cluster_id":"-1"}})", "header.cluster_id"},
      {"kvs not array", "{" + header(1) + R"(,"kvs":{"key":"YQ=="}})", "kvs: expected an array"},
      {"kv not object", "{" + header(1) + R"(,"kvs":["YQ=="]})", "kvs[0]"},
      {"bad base64 key", "{" + header(1) + R"(,"kvs":[{"key":"!!"}]})", "kvs[0].key"},
      {"key number", "{" + header(1) + R"(,"kvs":[{"key":5}]})", "kvs[0].key"},
      {"bad base64 value", "{" + header(1) + R"(,"kvs":[{"key":"YQ==","value":"YQ="}]})", "kvs[0].value"},
      {"more not bool", "{" + header(1) + R"(,"more":"true"})", "more"},
      {"count null", "{" + header(1) + R"(,"count":null})", "count"},
  };
  for (const auto& c : cases) {
    auto r = decode_range(c.body);
    ASSERT_FALSE(r) << c.name;
    EXPECT_EQ(r.error().kind, Error::Kind::kMalformed) << c.name;
    EXPECT_NE(r.error().message.find(c.mentions), std::string::npos) << c.name << ": " << r.error().message;
  }
}

TEST(EtcdDecode, PutAndDelete) {
  auto p = decode_put(
      "{" + header(9) +
      R"(,"prev_kv":{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}})");
  ASSERT_TRUE(p) << p.error().to_string();
  EXPECT_EQ(p->revision(), 9);
  ASSERT_TRUE(p->prev_kv);
  EXPECT_EQ(p->prev_kv->value, "bar");
  auto plain = decode_put("{" + header(10) + "}");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->prev_kv);

  auto d = decode_delete("{" + header(11) + R"(,"deleted":"2"})");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->deleted, 2);
  auto none = decode_delete("{" + header(11) + "}");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->deleted, 0);
  EXPECT_FALSE(decode_delete(R"({"deleted":"1"})"));
  EXPECT_FALSE(decode_put("{" + header(1) + R"(,"prev_kv":[]})"));
}

TEST(EtcdDecode, FailedTxnHasNoSucceededField) {
  // As etcd 3.4 answers a txn whose compare failed, with a range as the failure op.
  auto r = decode_txn("{" + header(3) +
                      R"(,"responses":[{"response_range":{"header":{"revision":"3"},"kvs":[{"key":"Zm9v",)"
                      R"("create_revision":"2","mod_revision":"3","version":"2","value":"YmFy"}],"count":"1"}}]})");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_FALSE(r->succeeded);
  EXPECT_EQ(r->revision(), 3);
  ASSERT_EQ(r->responses.size(), 1u);
  EXPECT_EQ(r->responses[0].kind, Op::Kind::kRange);
  ASSERT_EQ(r->responses[0].range.kvs.size(), 1u);
  EXPECT_EQ(r->responses[0].range.kvs[0].mod_revision, 3);
  EXPECT_EQ(r->responses[0].range.revision(), 3);
}

TEST(EtcdDecode, SucceededTxnWithPutAndDelete) {
  auto r = decode_txn("{" + header(4) +
                      R"(,"succeeded":true,"responses":[{"response_put":{"header":{"revision":"4"}}},)"
                      R"({"response_delete_range":{"header":{"revision":"4"},"deleted":"1"}}]})");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->succeeded);
  ASSERT_EQ(r->responses.size(), 2u);
  EXPECT_EQ(r->responses[0].kind, Op::Kind::kPut);
  EXPECT_EQ(r->responses[0].put.revision(), 4);
  EXPECT_EQ(r->responses[1].kind, Op::Kind::kDelete);
  EXPECT_EQ(r->responses[1].del.deleted, 1);
  // A txn without ops: no responses at all.
  auto empty = decode_txn("{" + header(4) + R"(,"succeeded":true})");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->responses.empty());
}

TEST(EtcdDecode, MalformedTxn) {
  EXPECT_FALSE(decode_txn(R"({"succeeded":true})"));                                     // no header
  EXPECT_FALSE(decode_txn("{" + header(1) + R"(,"succeeded":"true"})"));                 // string bool
  EXPECT_FALSE(decode_txn("{" + header(1) + R"(,"responses":[{}]})"));                   // no kind
  EXPECT_FALSE(decode_txn("{" + header(1) + R"(,"responses":[{"response_txn":{}}]})"));  // nested txn
  EXPECT_FALSE(decode_txn("{" + header(1) + R"(,"responses":[1]})"));
  EXPECT_FALSE(decode_txn("{" + header(1) + R"(,"responses":[{"response_put":[]}]})"));
  auto bad = decode_txn("{" + header(1) +
                        R"(,"responses":[{"response_range":{"kvs":[{"key":"Zm9v"}]}},)"
                        R"({"response_range":{"kvs":[{"key":"Zm9v!"}]}}]})");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("responses[1].response_range.kvs[0].key"), std::string::npos)
      << bad.error().message;
}

TEST(EtcdDecode, LeaseGrantAndRevoke) {
  auto g = decode_lease_grant("{" + header(1) + R"(,"ID":"7587862090474455555","TTL":"2"})");
  ASSERT_TRUE(g) << g.error().to_string();
  EXPECT_EQ(g->id, 7587862090474455555);
  EXPECT_EQ(g->ttl, 2);
  EXPECT_FALSE(decode_lease_grant("{" + header(1) + R"(,"TTL":"2"})"));  // no ID
  EXPECT_FALSE(decode_lease_grant(R"({"ID":"1","TTL":"2"})"));           // no header
  auto refused = decode_lease_grant("{" + header(1) + R"(,"ID":"1","TTL":"2","error":"lease exists"})");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, Error::Kind::kEtcd);
  EXPECT_TRUE(decode_lease_revoke("{" + header(6) + "}"));
  EXPECT_FALSE(decode_lease_revoke("{}"));
}

TEST(EtcdDecode, StatusHasCamelCaseFields) {
  auto st = decode_status(R"({"header":{"cluster_id":"1","member_id":"3319814642761637952","revision":"1",)"
                          R"("raft_term":"2"},"version":"3.4.23","dbSize":"20480","leader":"3319814642761637952",)"
                          R"("raftIndex":"5","raftTerm":"2","raftAppliedIndex":"5","dbSizeInUse":"16384"})");
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_EQ(st->version, "3.4.23");
  EXPECT_EQ(st->db_size, 20480);
  EXPECT_EQ(st->raft_index, 5u);
  EXPECT_TRUE(st->is_leader());
  auto follower = decode_status("{" + header(1) + R"(,"leader":"42"})");
  ASSERT_TRUE(follower);
  EXPECT_FALSE(follower->is_leader());
  auto none = decode_status("{" + header(1) + "}");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->leader, 0u);
  EXPECT_FALSE(none->is_leader());
  EXPECT_FALSE(decode_status(R"({"version":"3.4.23"})"));
  EXPECT_FALSE(decode_status("{" + header(1) + R"(,"leader":"-1"})"));
}

TEST(EtcdDecode, KeepaliveStreamAnswer) {
  auto ttl = decode_lease_keepalive(R"({"result":{)" + header(5) + R"(,"ID":"12","TTL":"2"}})" + "\n");
  ASSERT_TRUE(ttl) << ttl.error().to_string();
  EXPECT_EQ(*ttl, 2);
  // An expired lease: TTL 0, so no TTL at all.
  auto gone = decode_lease_keepalive(R"({"result":{)" + header(5) + R"(,"ID":"12"}})" + "\n");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().kind, Error::Kind::kLeaseNotFound);
  EXPECT_NE(gone.error().message.find("12"), std::string::npos);
  auto err = decode_lease_keepalive(
      R"({"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}})");
  ASSERT_FALSE(err);
  EXPECT_TRUE(is_no_leader(err.error()));
  EXPECT_EQ(decode_lease_keepalive("").error().kind, Error::Kind::kMalformed);
  EXPECT_EQ(decode_lease_keepalive("\n").error().kind, Error::Kind::kMalformed);
  EXPECT_EQ(decode_lease_keepalive("{\"result\":").error().kind, Error::Kind::kMalformed);
  EXPECT_EQ(decode_lease_keepalive(R"({"result":{"ID":"1","TTL":"2"}})").error().kind, Error::Kind::kMalformed);
  EXPECT_EQ(decode_lease_keepalive(R"({"result":{)" + header(5) + R"(,"TTL":"two"}})").error().kind,
            Error::Kind::kMalformed);
  EXPECT_EQ(decode_lease_keepalive("x").error().kind, Error::Kind::kMalformed);
}

TEST(EtcdDecode, ErrorBodies) {
  auto e = decode_error(400, R"({"error":"etcdserver: too many operations in txn request",)"
                             R"("message":"etcdserver: too many operations in txn request","code":3})");
  EXPECT_EQ(e.kind, Error::Kind::kEtcd);
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.grpc_code, 3);
  EXPECT_EQ(e.message, "etcdserver: too many operations in txn request");

  auto lease = decode_error(404, R"({"error":"etcdserver: requested lease not found",)"
                                 R"("message":"etcdserver: requested lease not found","code":5})");
  EXPECT_EQ(lease.kind, Error::Kind::kLeaseNotFound);
  EXPECT_EQ(lease.grpc_code, 5);

  auto no_leader = decode_error(503, R"({"error":"etcdserver: no leader","code":14})");
  EXPECT_TRUE(is_no_leader(no_leader));
  EXPECT_FALSE(is_no_leader(e));

  auto page = decode_error(404, "404 page not found\n");
  EXPECT_EQ(page.kind, Error::Kind::kHttpStatus);
  EXPECT_EQ(page.http_status, 404);
  EXPECT_NE(page.message.find("404 page not found"), std::string::npos);
  EXPECT_EQ(decode_error(502, "").kind, Error::Kind::kHttpStatus);
  EXPECT_EQ(decode_error(500, R"({"error":5})").kind, Error::Kind::kHttpStatus);
  EXPECT_EQ(decode_error(500, R"({"other":"x"})").kind, Error::Kind::kHttpStatus);
  auto binary = decode_error(500, "\x01\x02\xff junk");
  EXPECT_EQ(binary.kind, Error::Kind::kHttpStatus);
  EXPECT_EQ(binary.message.find('\xff'), std::string::npos);
}

TEST(EtcdError, ToStringNamesEndpointKindAndMessage) {
  Error e{.kind = Error::Kind::kUnreachable, .endpoint = "http://127.0.0.1:2379", .message = "connection refused"};
  EXPECT_EQ(e.to_string(), "etcd http://127.0.0.1:2379: unreachable: connection refused");
  Error etcd{.kind = Error::Kind::kEtcd, .message = "etcdserver: no leader", .grpc_code = 14};
  EXPECT_EQ(etcd.to_string(), "etcd: etcd error (gRPC code 14): etcdserver: no leader");
  Error http = decode_error(502, "bad gateway");
  http.endpoint = "http://h:1";
  EXPECT_EQ(http.to_string(), "etcd http://h:1: HTTP error 502: answer 'bad gateway'");
}

// ----------------------------------------------------------------------- streams

std::vector<std::string> split_all(JsonObjectSplitter& s) {
  std::vector<std::string> out;
  while (auto o = s.next()) out.push_back(*o);
  return out;
}

TEST(EtcdJsonSplitter, SeveralObjectsInOneRead) {
  JsonObjectSplitter s;
  s.feed("{\"a\":1}\n{\"b\":[{}]}\r\n  {\"c\":\"x\"}\n");
  EXPECT_EQ(split_all(s), (std::vector<std::string>{"{\"a\":1}", "{\"b\":[{}]}", "{\"c\":\"x\"}"}));
  EXPECT_FALSE(s.error());
  EXPECT_EQ(s.pending(), 0u);
}

TEST(EtcdJsonSplitter, ObjectSplitAtEveryOctet) {
  // Braces and quotes inside strings, escaped quotes and a backslash before the closing quote.
  const std::string a = R"({"s":"}{[\"x","t":"\\","u":{"v":[1,{"w":"]"}]}})";
  const std::string b = R"({"b":2})";
  const std::string stream = a + "\n" + b + "\n";
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    JsonObjectSplitter s;
    s.feed(stream.substr(0, cut));
    auto got = split_all(s);
    s.feed(stream.substr(cut));
    auto rest = split_all(s);
    got.insert(got.end(), rest.begin(), rest.end());
    EXPECT_EQ(got, (std::vector<std::string>{a, b})) << "cut at " << cut;
  }
  JsonObjectSplitter bytewise;
  std::vector<std::string> got;
  for (char c : stream) {
    bytewise.feed(std::string_view(&c, 1));
    auto more = split_all(bytewise);
    got.insert(got.end(), more.begin(), more.end());
  }
  EXPECT_EQ(got, (std::vector<std::string>{a, b}));
}

TEST(EtcdJsonSplitter, JunkBetweenObjectsIsAnError) {
  JsonObjectSplitter s;
  s.feed("{\"a\":1} x {\"b\":2}");
  EXPECT_EQ(s.next(), "{\"a\":1}");
  EXPECT_FALSE(s.next());
  ASSERT_TRUE(s.error());
  s.feed("{\"c\":3}");
  EXPECT_FALSE(s.next());
  s.reset();
  s.feed("[1]");
  EXPECT_FALSE(s.next());
  EXPECT_TRUE(s.error());
}

TEST(EtcdJsonSplitter, OversizedObjectIsAnError) {
  JsonObjectSplitter s(64);
  s.feed("{\"a\":\"" + std::string(100, 'x'));
  EXPECT_FALSE(s.next());
  ASSERT_TRUE(s.error());
  EXPECT_NE(s.error()->find("64"), std::string::npos);
}

TEST(EtcdJsonSplitter, LongStreamKeepsLittleBuffered) {
  JsonObjectSplitter s;
  std::size_t objects = 0;
  for (int i = 0; i < 1000; ++i) {
    s.feed("{\"i\":" + std::to_string(i) + "}\n{\"j\":");
    objects += split_all(s).size();
    s.feed("1}\n");
    objects += split_all(s).size();
    EXPECT_LT(s.pending(), 64u);
  }
  EXPECT_EQ(objects, 2000u);
}

// Watch messages as etcd 3.4 sends them.
std::string created(int rev) { return R"({"result":{)" + header(rev) + R"(,"created":true}})" + "\n"; }
std::string put_event(int rev, const char* key_b64, const char* value_b64, int create_rev, int version) {
  return R"({"result":{)" + header(rev) + R"(,"events":[{"kv":{"key":")" + key_b64 + R"(","create_revision":")" +
         std::to_string(create_rev) + R"(","mod_revision":")" + std::to_string(rev) + R"(","version":")" +
         std::to_string(version) + R"(","value":")" + value_b64 + R"("}}]}})" + "\n";
}

TEST(EtcdWatchMessage, DecodesEventsOfBothTypes) {
  auto m = decode_watch_message(
      R"({"result":{)" + header(6) +
      R"(,"events":[{"kv":{"key":"YQ==","create_revision":"5","mod_revision":"5","version":"1","value":"Mw=="}},)"
      R"({"type":"DELETE","kv":{"key":"YQ==","mod_revision":"6"},"prev_kv":{"key":"YQ==","create_revision":"5",)"
      R"("mod_revision":"5","version":"1","value":"Mw=="}}]}})");
  ASSERT_TRUE(m) << m.error().to_string();
  EXPECT_FALSE(m->created);
  ASSERT_EQ(m->events.size(), 2u);
  EXPECT_EQ(m->events[0].type, WatchEvent::Type::kPut);  // PUT is the default: no "type"
  EXPECT_EQ(m->events[0].kv.value, "3");
  EXPECT_FALSE(m->events[0].prev_kv);
  EXPECT_EQ(m->events[1].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(m->events[1].kv.mod_revision, 6);
  ASSERT_TRUE(m->events[1].prev_kv);
  EXPECT_EQ(m->events[1].prev_kv->value, "3");
}

TEST(EtcdWatchMessage, CompactionHasNoHeaderRevision) {
  auto m = decode_watch_message(
      R"({"result":{"header":{"cluster_id":"1","member_id":"2","raft_term":"2"},"canceled":true,"compact_revision":"3"}})");
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->canceled);
  EXPECT_EQ(m->compact_revision, 3);
  EXPECT_EQ(m->header.revision, 0);
}

TEST(EtcdWatchMessage, MalformedMessages) {
  EXPECT_EQ(decode_watch_message(R"({"result":{"created":true}})").error().kind, Error::Kind::kMalformed);
  EXPECT_EQ(decode_watch_message(R"({"header":{}})").error().kind, Error::Kind::kMalformed);
  EXPECT_EQ(decode_watch_message(R"({"result":[]})").error().kind, Error::Kind::kMalformed);
  EXPECT_FALSE(decode_watch_message(R"({"result":{)" + header(1) + R"(,"events":[{"type":"PATCH","kv":{}}]}})"));
  EXPECT_FALSE(decode_watch_message(R"({"result":{)" + header(1) + R"(,"events":[{"type":"PUT"}]}})"));
  EXPECT_FALSE(decode_watch_message(R"({"result":{)" + header(1) + R"(,"events":{}}})"));
  EXPECT_FALSE(decode_watch_message(R"({"result":{)" + header(1) + R"(,"events":[{"kv":{"key":"%%"}}]}})"));
  auto e = decode_watch_message(R"({"error":{"grpc_code":14,"message":"etcdserver: no leader"}})");
  ASSERT_FALSE(e);
  EXPECT_TRUE(is_no_leader(e.error()));
  auto parse = decode_watch_message(R"({"error":"illegal base64 data at input byte 0","code":2})");
  ASSERT_FALSE(parse);
  EXPECT_EQ(parse.error().kind, Error::Kind::kEtcd);
}

TEST(EtcdWatchStream, FromNowResumesAfterTheCreationRevision) {
  WatchStream w({.key = "a"});
  EXPECT_EQ(w.create_body(), R"({"create_request":{"key":"YQ=="}})");
  w.begin_connection();
  std::vector<WatchUpdate> out;
  ASSERT_TRUE(w.feed(created(4), out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, WatchUpdate::Kind::kCreated);
  EXPECT_EQ(out[0].revision, 4);
  EXPECT_FALSE(out[0].resumed);
  EXPECT_TRUE(w.created());
  EXPECT_EQ(w.next_revision(), 5);
  EXPECT_EQ(w.create_body(), R"({"create_request":{"key":"YQ==","start_revision":"5"}})");
}

TEST(EtcdWatchStream, HistoryThenLiveSplitAndMerged) {
  WatchStream w({.key = "a", .start_revision = 2});
  w.begin_connection();
  // The creation message reports the store's revision (6), ahead of the history (2..5).
  const std::string stream = created(6) + put_event(2, "YQ==", "MQ==", 2, 1) + put_event(3, "YQ==", "Mg==", 2, 2) +
                             put_event(7, "YQ==", "Mw==", 2, 3);
  std::vector<WatchUpdate> out;
  // Odd-sized reads: objects split across reads and several in one.
  for (std::size_t i = 0; i < stream.size(); i += 37) ASSERT_TRUE(w.feed(stream.substr(i, 37), out));
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].kind, WatchUpdate::Kind::kCreated);
  std::vector<std::int64_t> revs;
  for (std::size_t i = 1; i < out.size(); ++i) {
    ASSERT_EQ(out[i].kind, WatchUpdate::Kind::kEvents);
    ASSERT_EQ(out[i].events.size(), 1u);
    revs.push_back(out[i].events[0].kv.mod_revision);
  }
  EXPECT_EQ(revs, (std::vector<std::int64_t>{2, 3, 7}));
  EXPECT_EQ(out[3].events[0].kv.value, "3");
  EXPECT_EQ(w.next_revision(), 8);
}

TEST(EtcdWatchStream, CreatedBeforeHistoryDoesNotSkipIt) {
  WatchStream w({.key = "a", .start_revision = 2});
  w.begin_connection();
  std::vector<WatchUpdate> out;
  ASSERT_TRUE(w.feed(created(6), out));
  EXPECT_EQ(w.next_revision(), 2);  // the history is still to come
}

TEST(EtcdWatchStream, ReconnectionResumesAfterTheLastEvent) {
  WatchStream w({.key = "a", .range_end = "b", .prev_kv = true});
  w.begin_connection();
  std::vector<WatchUpdate> out;
  ASSERT_TRUE(w.feed(created(4) + put_event(5, "YQ==", "MQ==", 5, 1), out));
  // The connection breaks in the middle of the next message.
  ASSERT_TRUE(w.feed(put_event(6, "YQ==", "Mg==", 5, 2).substr(0, 30), out));
  EXPECT_EQ(w.next_revision(), 6);
  w.begin_connection();
  EXPECT_EQ(w.create_body(),
            R"({"create_request":{"key":"YQ==","prev_kv":true,"range_end":"Yg==","start_revision":"6"}})");
  out.clear();
  ASSERT_TRUE(w.feed(created(6) + put_event(6, "YQ==", "Mg==", 5, 2), out));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].kind, WatchUpdate::Kind::kCreated);
  EXPECT_TRUE(out[0].resumed);
  EXPECT_EQ(out[1].events.at(0).kv.value, "2");
  EXPECT_EQ(w.next_revision(), 7);
}

TEST(EtcdWatchStream, ProgressAdvancesTheRevision) {
  WatchStream w({.key = "a"});
  w.begin_connection();
  std::vector<WatchUpdate> out;
  ASSERT_TRUE(w.feed(created(4) + R"({"result":{)" + header(9) + "}}\n", out));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].kind, WatchUpdate::Kind::kProgress);
  EXPECT_EQ(out[1].revision, 9);
  EXPECT_EQ(w.next_revision(), 10);
}

TEST(EtcdWatchStream, CompactionEndsTheWatch) {
  WatchStream w({.key = "a", .start_revision = 1});
  w.begin_connection();
  std::vector<WatchUpdate> out;
  ASSERT_TRUE(
      w.feed(created(4) +
                 R"({"result":{"header":{"cluster_id":"1","raft_term":"2"},"canceled":true,"compact_revision":"3"}})" +
                 "\n" + put_event(5, "YQ==", "MQ==", 5, 1),
             out));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].kind, WatchUpdate::Kind::kCompacted);
  EXPECT_EQ(out[1].compact_revision, 3);
  EXPECT_TRUE(w.ended());
  out.clear();
  ASSERT_TRUE(w.feed(put_event(6, "YQ==", "MQ==", 5, 2), out));
  EXPECT_TRUE(out.empty());
}

TEST(EtcdWatchStream, CancelEndsTheWatch) {
  WatchStream w({.key = "a"});
  w.begin_connection();
  std::vector<WatchUpdate> out;
  ASSERT_TRUE(w.feed(R"({"result":{)" + header(4) + R"(,"canceled":true,"cancel_reason":"permission denied"}})", out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, WatchUpdate::Kind::kCanceled);
  EXPECT_EQ(out[0].reason, "permission denied");
  EXPECT_TRUE(w.ended());
}

TEST(EtcdWatchStream, ErrorsDropTheConnectionButKeepTheRevision) {
  WatchStream w({.key = "a"});
  w.begin_connection();
  std::vector<WatchUpdate> out;
  ASSERT_TRUE(w.feed(created(4), out));
  auto bad = w.feed(R"({"result":{)" + header(5) + R"(,"events":[{"kv":{"key":"@"}}]}})", out);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, Error::Kind::kMalformed);
  EXPECT_EQ(w.next_revision(), 5);
  EXPECT_FALSE(w.ended());

  w.begin_connection();
  auto junk = w.feed("<html>", out);
  ASSERT_FALSE(junk);
  EXPECT_NE(junk.error().message.find("watch stream"), std::string::npos);

  w.begin_connection();
  auto etcd = w.feed(R"({"error":{"grpc_code":14,"message":"etcdserver: no leader"}})", out);
  ASSERT_FALSE(etcd);
  EXPECT_TRUE(is_no_leader(etcd.error()));
  EXPECT_EQ(w.next_revision(), 5);
}

// ----------------------------------------------------------------------- batches

std::vector<PutRequest> puts(int n, std::size_t value_size = 10) {
  std::vector<PutRequest> out;
  for (int i = 0; i < n; ++i) out.push_back({.key = "sas/" + std::to_string(i), .value = std::string(value_size, 'v')});
  return out;
}

TEST(EtcdBatch, ThousandPutsInTransactionsOfAtMost128) {
  auto sizes = split_put_batch(puts(1000), 128, std::size_t{1} << 20);
  std::vector<std::size_t> expected(7, 128);
  expected.push_back(1000 - 7 * 128);
  EXPECT_EQ(sizes, expected);
}

TEST(EtcdBatch, SplitsOnBytesAndOnRepeatedKeys) {
  // 10 puts of ~1 KiB with a 4 KiB budget: 4 per transaction (4 x (5 + 1000 + 16) octets).
  auto sizes = split_put_batch(puts(10, 1000), 128, 4096);
  EXPECT_EQ(sizes, (std::vector<std::size_t>{4, 4, 2}));
  // A put larger than the budget goes alone.
  auto big = puts(3, 10);
  big[1].value = std::string(10000, 'x');
  EXPECT_EQ(split_put_batch(big, 128, 4096), (std::vector<std::size_t>{1, 1, 1}));
  // etcd refuses a key twice in one txn: a new one starts at the repeat.
  std::vector<PutRequest> dup = {{.key = "a"}, {.key = "b"}, {.key = "a"}, {.key = "c"}};
  EXPECT_EQ(split_put_batch(dup, 128, 4096), (std::vector<std::size_t>{2, 2}));
  EXPECT_TRUE(split_put_batch({}, 128, 4096).empty());
  EXPECT_EQ(split_put_batch(puts(3), 0, 4096), (std::vector<std::size_t>{1, 1, 1}));
}

}  // namespace
}  // namespace mobike::platform::etcd
