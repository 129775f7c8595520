#include "control/protocol.h"

#include <gtest/gtest.h>

namespace mobike::control {
namespace {

IkeSaInfo sample_sa() {
  IkeSaInfo s;
  s.id = 7;
  s.name = "home";
  s.state = "ESTABLISHED";
  s.initiator = true;
  s.local = Endpoint{IpAddress::parse("192.0.2.1").value(), 4500};
  s.remote = Endpoint{IpAddress::parse("2001:db8::2").value(), 4500};
  s.local_id = "client.example.org";
  s.remote_id = "vpn.example.org";
  s.spi_i = 0x0123456789abcdefull;
  s.spi_r = 0x00000000000000ffull;
  s.nat_local = true;
  s.ike_proposal = "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519";
  s.established_seconds = 3600;
  ChildSaInfo c;
  c.id = 9;
  c.name = "net";
  c.state = "INSTALLED";
  c.spi_in = 0xc0ffee01;
  c.spi_out = 0x0000beef;
  c.local_ts = {"10.1.0.0/16"};
  c.remote_ts = {"10.2.0.0/16", "10.3.0.0/16"};
  c.esp_proposal = "AES_GCM_16-128";
  s.children.push_back(c);
  return s;
}

TEST(Protocol, CommandNamesRoundTrip) {
  for (auto c : {Command::kListSas, Command::kInitiate, Command::kTerminate, Command::kRekey,
                 Command::kStats, Command::kReload})
    EXPECT_EQ(command_from_name(command_name(c)), c);
  EXPECT_EQ(command_name(Command::kListSas), "list-sas");
  EXPECT_FALSE(command_from_name("list"));
}

TEST(Protocol, RequestsRoundTripThroughJson) {
  std::vector<Request> requests = {
      ListSasRequest{},
      InitiateRequest{"home"},
      TerminateRequest{std::string("home"), std::nullopt},
      TerminateRequest{std::nullopt, 42},
      RekeyRequest{RekeyRequest::Kind::kIke, 3},
      RekeyRequest{RekeyRequest::Kind::kChild, 5},
      StatsRequest{},
      ReloadRequest{},
      ListConnsRequest{},
  };
  for (const auto& r : requests) {
    auto j = request_to_json(r);
    auto line = to_line(j);
    ASSERT_EQ(line.back(), '\n');
    EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
    auto parsed = from_line(line);
    ASSERT_TRUE(parsed);
    auto back = request_from_json(*parsed);
    ASSERT_TRUE(back) << j.dump() << ": " << back.error();
    EXPECT_EQ(*back, r) << j.dump();
  }
}

TEST(Protocol, ConnectionListLooksLikeSwanctl) {
  EXPECT_EQ(command_name(Command::kListConns), "list-conns");
  EXPECT_EQ(format_conn_list(json::array()), "no connections\n");
  const json conns = json::parse(R"([{
    "name": "home", "local_addrs": [], "remote_addrs": ["vpn.example.test", "192.0.2.7"],
    "local_id": "carol@example.test", "remote_id": "vpn.example.test", "local_auth": "eap-mschapv2",
    "remote_auth": "pubkey", "eap_id": "carol", "vips": ["0.0.0.0"], "mobike": true, "start": "initiate",
    "ike_proposals": "aes128gcm16-prfsha256-x25519",
    "children": [{"name": "net", "local_ts": [], "remote_ts": ["10.0.0.0/8"], "esp_proposals": "aes128gcm16"}]}])");
  EXPECT_EQ(format_conn_list(conns),
            "home: IKEv2, %any...vpn.example.test, 192.0.2.7, MOBIKE\n"
            "  local:  eap-mschapv2 carol@example.test\n"
            "  remote: pubkey vpn.example.test, EAP carol\n"
            "  vips: 0.0.0.0\n"
            "  start: initiate, proposals: aes128gcm16-prfsha256-x25519\n"
            "  net: TUNNEL, aes128gcm16\n"
            "    dynamic === 10.0.0.0/8\n");
  auto bad = request_from_json(json{{"command", "list-conns"}, {"name", "x"}});
  EXPECT_FALSE(bad);
}

TEST(Protocol, RequestWireShapes) {
  EXPECT_EQ(request_to_json(ListSasRequest{}), json::parse(R"({"command":"list-sas"})"));
  EXPECT_EQ(request_to_json(InitiateRequest{"home"}),
            json::parse(R"({"command":"initiate","connection":"home"})"));
  EXPECT_EQ(request_to_json(TerminateRequest{std::nullopt, 4}), json::parse(R"({"command":"terminate","sa":4})"));
  EXPECT_EQ(request_to_json(RekeyRequest{RekeyRequest::Kind::kChild, 5}),
            json::parse(R"({"command":"rekey","child":5})"));
}

TEST(Protocol, BadRequestsAreExplained) {
  auto err = [](const char* text) {
    auto r = request_from_json(json::parse(text));
    EXPECT_FALSE(r) << text;
    return r ? std::string() : r.error();
  };
  EXPECT_NE(err("[1,2]").find("JSON object"), std::string::npos);
  EXPECT_NE(err("{}").find("\"command\""), std::string::npos);
  EXPECT_NE(err(R"({"command": 5})").find("\"command\""), std::string::npos);
  EXPECT_EQ(err(R"({"command": "explode"})"), "unknown command 'explode'");
  EXPECT_EQ(err(R"({"command": "list-sas", "verbose": true})"), "unknown argument 'verbose' for list-sas");
  EXPECT_NE(err(R"({"command": "initiate"})").find("connection"), std::string::npos);
  EXPECT_NE(err(R"({"command": "initiate", "connection": 3})").find("connection"), std::string::npos);
  EXPECT_NE(err(R"({"command": "initiate", "connection": ""})").find("connection"), std::string::npos);
  EXPECT_NE(err(R"({"command": "terminate"})").find("exactly one"), std::string::npos);
  EXPECT_NE(err(R"({"command": "terminate", "connection": "a", "sa": 1})").find("exactly one"),
            std::string::npos);
  EXPECT_NE(err(R"({"command": "terminate", "sa": -1})").find("non-negative"), std::string::npos);
  EXPECT_NE(err(R"({"command": "terminate", "sa": 1.5})").find("non-negative"), std::string::npos);
  EXPECT_NE(err(R"({"command": "rekey", "ike": 1, "child": 2})").find("exactly one"), std::string::npos);
  EXPECT_NE(err(R"({"command": "rekey"})").find("exactly one"), std::string::npos);
  EXPECT_NE(err(R"({"command": "rekey", "ike": "1"})").find("non-negative"), std::string::npos);
}

TEST(Protocol, Responses) {
  auto ok = response_from_json(ok_response(json{{"n", 1}}));
  ASSERT_TRUE(ok);
  EXPECT_TRUE(ok->ok);
  EXPECT_EQ(ok->result["n"], 1);
  EXPECT_EQ(ok_response(), json::parse(R"({"ok":true,"result":null})"));

  auto bad = response_from_json(error_response("no such connection 'x'"));
  ASSERT_TRUE(bad);
  EXPECT_FALSE(bad->ok);
  EXPECT_EQ(bad->error, "no such connection 'x'");
  EXPECT_EQ(error_response("e"), json::parse(R"({"ok":false,"error":"e"})"));

  EXPECT_FALSE(response_from_json(json::parse("[]")));
  EXPECT_FALSE(response_from_json(json::parse(R"({"ok":"yes"})")));
  EXPECT_FALSE(response_from_json(json::parse(R"({"ok":false})")));
}

TEST(Protocol, LinesNeverThrow) {
  EXPECT_FALSE(from_line("{not json"));
  EXPECT_FALSE(from_line(""));
  EXPECT_FALSE(from_line("{} {}"));
  auto j = from_line("{\"a\":1}\r\n");
  ASSERT_TRUE(j);
  EXPECT_EQ((*j)["a"], 1);
  // Not UTF-8: replaced rather than an exception from dump().
  json bad = {{"id", std::string("\xff\xfe")}};
  std::string line;
  EXPECT_NO_THROW(line = to_line(bad));
  EXPECT_TRUE(from_line(line));
}

TEST(Protocol, IkeSaJsonShape) {
  json j = sample_sa();
  EXPECT_EQ(j["id"], 7);
  EXPECT_EQ(j["initiator"], true);
  EXPECT_EQ(j["local"], json::parse(R"({"addr":"192.0.2.1","port":4500})"));
  EXPECT_EQ(j["remote"]["addr"], "2001:db8::2");
  EXPECT_EQ(j["spi_i"], "0123456789abcdef");
  EXPECT_EQ(j["spi_r"], "00000000000000ff");
  EXPECT_EQ(j["nat_local"], true);
  EXPECT_EQ(j["nat_remote"], false);
  EXPECT_EQ(j["established_seconds"], 3600);
  ASSERT_EQ(j["children"].size(), 1u);
  EXPECT_EQ(j["children"][0]["spi_in"], "c0ffee01");
  EXPECT_EQ(j["children"][0]["spi_out"], "0000beef");
  EXPECT_EQ(j["children"][0]["remote_ts"], json::parse(R"(["10.2.0.0/16","10.3.0.0/16"])"));
  EXPECT_EQ(j["children"][0]["esp_proposal"], "AES_GCM_16-128");
}

TEST(Protocol, IkeSaListRoundTrips) {
  std::vector<IkeSaInfo> sas = {sample_sa(), sample_sa()};
  sas[1].id = 8;
  sas[1].local_id.clear();
  sas[1].children.clear();
  sas[1].ha_sync = {"message_id"};
  json j = sas;
  auto back = sa_list_from_json(json::parse(j.dump()));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(*back, sas);
  EXPECT_FALSE(j[1].contains("local_id"));  // empty optional fields are left out
  EXPECT_FALSE(j[0].contains("ha_sync"));
  EXPECT_EQ(j[1]["ha_sync"], json::array({"message_id"}));
}

TEST(Protocol, IkeSaListRejectsBadShapes) {
  json good = std::vector<IkeSaInfo>{sample_sa()};
  EXPECT_FALSE(sa_list_from_json(json::object()));

  auto broken = [&](auto mutate) {
    json j = good;
    mutate(j[0]);
    auto r = sa_list_from_json(j);
    EXPECT_FALSE(r) << j.dump();
    return r ? std::string() : r.error();
  };
  EXPECT_NE(broken([](json& s) { s["spi_i"] = "0123"; }).find("16 hex digits"), std::string::npos);
  EXPECT_NE(broken([](json& s) { s["spi_r"] = "zz23456789abcdef"; }).find("16 hex digits"), std::string::npos);
  EXPECT_NE(broken([](json& s) { s["children"][0]["spi_in"] = "c0ffee0"; }).find("8 hex digits"),
            std::string::npos);
  EXPECT_NE(broken([](json& s) { s["local"]["addr"] = "nowhere"; }).find("not an IP address"),
            std::string::npos);
  EXPECT_NE(broken([](json& s) { s.erase("state"); }).find("IKE SA #1"), std::string::npos);
  EXPECT_NE(broken([](json& s) { s["local"]["port"] = 70000; }).find("0..65535"), std::string::npos);
  broken([](json& s) { s["established_seconds"] = -1; });
  broken([](json& s) { s["id"] = 1.5; });
  broken([](json& s) { s["initiator"] = "yes"; });
  broken([](json& s) { s["children"] = json::object(); });
}

TEST(Protocol, SaTableLooksLikeSwanctl) {
  auto sa = sample_sa();
  auto text = format_sa_list({sa});
  EXPECT_EQ(text,
            "home: #7, ESTABLISHED, IKEv2, 0123456789abcdef_i* 00000000000000ff_r\n"
            "  local  'client.example.org' @ 192.0.2.1[4500] behind NAT\n"
            "  remote 'vpn.example.org' @ 2001:db8::2[4500]\n"
            "  AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519\n"
            "  established 3600s ago\n"
            "  net: #9, INSTALLED, ESP:AES_GCM_16-128\n"
            "    in  c0ffee01\n"
            "    out 0000beef\n"
            "    local  10.1.0.0/16\n"
            "    remote 10.2.0.0/16 10.3.0.0/16\n");

  sa.initiator = false;
  sa.local_id.clear();
  sa.nat_local = false;
  sa.nat_remote = true;
  sa.state = "CONNECTING";
  sa.established_seconds = 0;
  sa.children[0].local_ts.clear();
  text = format_sa_list({sa});
  EXPECT_NE(text.find("0123456789abcdef_i 00000000000000ff_r*"), std::string::npos) << text;
  EXPECT_NE(text.find("  local  192.0.2.1[4500]\n"), std::string::npos) << text;
  EXPECT_NE(text.find("[4500] behind NAT\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("established"), std::string::npos) << text;
  EXPECT_NE(text.find("    local  dynamic\n"), std::string::npos) << text;

  EXPECT_EQ(format_sa_list({}), "no IKE SAs\n");
}

TEST(Protocol, StatsAreFlattenedSortedAndAligned) {
  json stats = {{"datagrams_in", 10}, {"ike", {{"established", 2}, {"failed", 0}}}, {"dataplane", "none"}};
  EXPECT_EQ(format_stats(stats),
            "datagrams_in:    10\n"
            "dataplane:       none\n"
            "ike.established: 2\n"
            "ike.failed:      0\n");
}

}  // namespace
}  // namespace mobike::control

namespace mobike::control {
namespace {

TEST(ProtocolUpdateAddresses, RoundTripsAndChecksArguments) {
  Request r = UpdateAddressesRequest{7, std::string("192.0.2.9")};
  auto j = request_to_json(r);
  EXPECT_EQ(j.dump(), R"({"command":"update-addresses","local":"192.0.2.9","sa":7})");
  auto back = request_from_json(j);
  ASSERT_TRUE(back);
  EXPECT_EQ(std::get<UpdateAddressesRequest>(*back), (UpdateAddressesRequest{7, std::string("192.0.2.9")}));
  auto no_local = request_from_json(json{{"command", "update-addresses"}, {"sa", 3}});
  ASSERT_TRUE(no_local);
  EXPECT_FALSE(std::get<UpdateAddressesRequest>(*no_local).local);
  EXPECT_FALSE(request_from_json(json{{"command", "update-addresses"}}));
  EXPECT_FALSE(request_from_json(json{{"command", "update-addresses"}, {"sa", 3}, {"local", 5}}));
  EXPECT_FALSE(request_from_json(json{{"command", "update-addresses"}, {"sa", 3}, {"via", "x"}}));
}

}  // namespace
}  // namespace mobike::control

namespace mobike::control {
namespace {

TEST(ProtocolMobike, ListAddressesTakesNoArguments) {
  auto j = request_to_json(ListAddressesRequest{});
  EXPECT_EQ(j.dump(), R"({"command":"list-addresses"})");
  auto back = request_from_json(j);
  ASSERT_TRUE(back);
  EXPECT_TRUE(std::holds_alternative<ListAddressesRequest>(*back));
  EXPECT_FALSE(request_from_json(json{{"command", "list-addresses"}, {"all", true}}));
  EXPECT_EQ(format_address_list(json::parse(
                R"([{"addr":"10.1.0.2","prefix":24,"interface":"eth0","deprecated":false},
                    {"addr":"2001:db8::2","prefix":64,"interface":"wlan0","deprecated":true}])")),
            "10.1.0.2/24 eth0\n2001:db8::2/64 wlan0 deprecated\n");
  EXPECT_EQ(format_address_list(json::array()), "no usable local addresses\n");
}

TEST(ProtocolMobike, SaFieldsRoundTripAndAreOptionalOnRead) {
  IkeSaInfo s = sample_sa();
  s.mobike = true;
  s.peer_addresses = {"198.51.100.20", "2001:db8::20"};
  s.path_probing = true;
  s.moves = 3;
  json j = std::vector<IkeSaInfo>{s};
  EXPECT_EQ(j[0]["peer_addresses"], json::parse(R"(["198.51.100.20","2001:db8::20"])"));
  EXPECT_EQ(j[0]["moves"], 3);
  auto back = sa_list_from_json(json::parse(j.dump()));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->front(), s);
  // An older daemon's answer without the MOBIKE fields still reads.
  for (const char* key : {"mobike", "peer_addresses", "path_probing", "rr_pending", "moves"}) j[0].erase(key);
  auto old = sa_list_from_json(j);
  ASSERT_TRUE(old) << old.error();
  EXPECT_FALSE(old->front().mobike);
  EXPECT_TRUE(old->front().peer_addresses.empty());
  auto text = format_sa_list({s});
  EXPECT_NE(text.find("  MOBIKE, peer also at 198.51.100.20 2001:db8::20, moved 3x, probing paths\n"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace mobike::control

namespace mobike::control {
namespace {

TEST(ProtocolSwitch, RoundTripsAndChecksArguments) {
  SwitchRequest w;
  w.to = "198.51.100.20";
  w.all = true;
  w.rate = 500;
  auto j = request_to_json(w);
  EXPECT_EQ(j.dump(), R"({"all":true,"command":"switch","rate":500.0,"to":"198.51.100.20"})");
  auto back = request_from_json(j);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(std::get<SwitchRequest>(*back), w);
  auto by_sa = request_from_json(json{{"command", "switch"}, {"to", "2001:db8::20"}, {"sa", 3}});
  ASSERT_TRUE(by_sa) << by_sa.error();
  EXPECT_EQ(std::get<SwitchRequest>(*by_sa).sa, 3u);
  // Exactly one selector, a real address, a sane rate, nothing unknown.
  EXPECT_FALSE(request_from_json(json{{"command", "switch"}, {"to", "198.51.100.20"}}));
  EXPECT_FALSE(request_from_json(json{{"command", "switch"}, {"to", "198.51.100.20"}, {"sa", 3}, {"all", true}}));
  EXPECT_FALSE(request_from_json(json{{"command", "switch"}, {"to", "gw.example.org"}, {"all", true}}));
  EXPECT_FALSE(request_from_json(json{{"command", "switch"}, {"to", "198.51.100.20"}, {"all", true}, {"rate", 1e-12}}));
  EXPECT_FALSE(request_from_json(json{{"command", "switch"}, {"to", "198.51.100.20"}, {"all", true}, {"rate", -1}}));
  EXPECT_FALSE(request_from_json(json{{"command", "switch"}, {"to", "198.51.100.20"}, {"all", true}, {"via", 1}}));
  // Cancelling takes no argument.
  auto cancel = request_to_json(SwitchCancelRequest{});
  EXPECT_EQ(cancel.dump(), R"({"command":"switch-cancel"})");
  auto cancel_back = request_from_json(cancel);
  ASSERT_TRUE(cancel_back) << cancel_back.error();
  EXPECT_TRUE(std::holds_alternative<SwitchCancelRequest>(*cancel_back));
  EXPECT_FALSE(request_from_json(json{{"command", "switch-cancel"}, {"sa", 3}}));
  EXPECT_EQ(format_switch_result(json::parse(
                R"({"switched":1,"refused":1,"failed":0,"not_started":0,"seconds":0.0123,
                    "sas":[{"sa":3,"result":"switched","detail":"198.51.100.10 -> 198.51.100.20: switched"},
                           {"sa":4,"result":"refused","detail":""}]})")),
            "#3 switched: 198.51.100.10 -> 198.51.100.20: switched\n#4 refused\n"
            "1 switched, 1 refused, 0 failed, 0 not started, in 0.012 s\n");
}

}  // namespace
}  // namespace mobike::control

namespace mobike::control {
namespace {

TEST(ProtocolCluster, RequestsRoundTripAndCheckArguments) {
  std::vector<Request> requests = {ClusterStatusRequest{}, ClusterMoveRequest{7, "gw2"}, ClusterDrainRequest{},
                                   ClusterDrainRequest{std::string("gw3")}, ClusterRebalanceRequest{}};
  for (const auto& r : requests) {
    auto j = request_to_json(r);
    auto back = request_from_json(j);
    ASSERT_TRUE(back) << j.dump() << ": " << back.error();
    EXPECT_EQ(*back, r) << j.dump();
  }
  EXPECT_EQ(request_to_json(ClusterMoveRequest{7, "gw2"}),
            json::parse(R"({"command":"cluster-move","sa":7,"to":"gw2"})"));
  EXPECT_FALSE(request_from_json(json::parse(R"({"command":"cluster-move","sa":7})")));
  EXPECT_FALSE(request_from_json(json::parse(R"({"command":"cluster-move","to":"gw2"})")));
  EXPECT_FALSE(request_from_json(json::parse(R"({"command":"cluster-move","sa":-1,"to":"gw2"})")));
  EXPECT_FALSE(request_from_json(json::parse(R"({"command":"cluster-drain","node":""})")));
  EXPECT_FALSE(request_from_json(json::parse(R"({"command":"cluster-status","node":"gw1"})")));
  EXPECT_FALSE(request_from_json(json::parse(R"({"command":"cluster-rebalance","all":true})")));
}

TEST(ProtocolCluster, OwnerFieldsRoundTripAndShow) {
  IkeSaInfo s = sample_sa();
  s.owner = "gw1";
  s.moving_to = "gw2";
  json j = std::vector<IkeSaInfo>{s};
  EXPECT_EQ(j[0]["owner"], "gw1");
  auto back = sa_list_from_json(json::parse(j.dump()));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->front(), s);
  EXPECT_NE(format_sa_list({s}).find("  cluster node gw1, being handed to gw2\n"), std::string::npos);
  s.owner.clear();
  s.moving_to.clear();
  json plain = std::vector<IkeSaInfo>{s};
  EXPECT_FALSE(plain[0].contains("owner"));
  EXPECT_EQ(format_sa_list({s}).find("cluster node"), std::string::npos);
}

TEST(ProtocolCluster, MoveResultsAndStatusForHumans) {
  auto moves = format_cluster_moves(json::parse(
      R"({"moved":1,"returned":1,"failed":0,"not_asked":2,"seconds":0.25,
          "sas":[{"sa":3,"to":"gw2","result":"moved","detail":"the client follows gw2"},
                 {"sa":4,"to":"gw3","result":"returned","detail":"refused"}]})"));
  EXPECT_NE(moves.find("#3 -> gw2 moved: the client follows gw2\n"), std::string::npos) << moves;
  EXPECT_NE(moves.find("1 moved, 1 returned, 0 failed, 2 not asked (no switch support), in 0.250 s\n"),
            std::string::npos)
      << moves;
  auto st = format_cluster_status(json::parse(
      R"({"node":"gw1","state":"active","sas":3,"etcd":{"reachable":false,"error":"refused","unreachable_seconds":4},
          "nodes":[{"name":"gw1","state":"active","sas":3,"addresses":["198.51.100.11"]}],
          "counters":{"moves_out":2}})"));
  EXPECT_NE(st.find("etcd: UNREACHABLE for 4 s: refused"), std::string::npos) << st;
  EXPECT_NE(st.find("  gw1: active, 3 SAs, at 198.51.100.11\n"), std::string::npos) << st;
  EXPECT_NE(st.find("moves_out: 2"), std::string::npos) << st;
}

}  // namespace
}  // namespace mobike::control

namespace mobike::control {
namespace {

TEST(ProtocolProgress, RequestFlagIsAcceptedOnEveryCommandAndChecked) {
  json sw = request_to_json(SwitchRequest{"198.51.100.20", std::nullopt, std::nullopt, true, 5}, true);
  EXPECT_EQ(sw["progress"], true);
  EXPECT_TRUE(wants_progress(sw));
  auto parsed = request_from_json(sw);
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_EQ(std::get<SwitchRequest>(*parsed).rate, 5);
  // Without the flag nothing changes on the wire.
  EXPECT_FALSE(request_to_json(ClusterDrainRequest{}).contains("progress"));
  EXPECT_FALSE(wants_progress(request_to_json(ClusterDrainRequest{})));
  // Every command takes it (those that are not bulk simply never send progress).
  for (auto name : command_names()) {
    json j = {{"command", name}, {"progress", false}};
    auto r = request_from_json(j);
    if (!r) {
      EXPECT_EQ(r.error().find("progress"), std::string::npos) << name << ": " << r.error();
    }
  }
  EXPECT_TRUE(request_from_json(json{{"command", "cluster-drain"}, {"progress", true}}));
  EXPECT_TRUE(request_from_json(json{{"command", "list-sas"}, {"progress", true}}));
  auto bad = request_from_json(json{{"command", "cluster-rebalance"}, {"progress", 1}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), "\"progress\" must be true or false");
  EXPECT_FALSE(wants_progress(json{{"command", "switch"}, {"progress", "yes"}}));
  EXPECT_FALSE(wants_progress(json{{"command", "switch"}, {"progress", false}}));
  EXPECT_FALSE(wants_progress(json::array()));
}

TEST(ProtocolProgress, LineRoundTripsAndHasItsWireShape) {
  Progress p{40, 2, 60, 8, 1.5};
  EXPECT_EQ(p.total(), 100u);
  json line = progress_line(p);
  EXPECT_EQ(to_line(line),
            "{\"progress\":{\"done\":40,\"failed\":2,\"in_flight\":8,\"remaining\":60,\"seconds\":1.5}}\n");
  EXPECT_TRUE(is_progress_line(line));
  EXPECT_FALSE(is_progress_line(ok_response(json{{"switched", 1}})));
  EXPECT_FALSE(is_progress_line(json::array()));
  auto back = progress_from_json(*from_line(to_line(line)));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(*back, p);
  // Integral seconds are fine too (JSON does not keep 2.0 apart from 2).
  auto whole = progress_from_json(
      json::parse(R"({"progress":{"done":0,"failed":0,"remaining":3,"in_flight":0,"seconds":2}})"));
  ASSERT_TRUE(whole) << whole.error();
  EXPECT_EQ(whole->seconds, 2.0);
}

TEST(ProtocolProgress, BadLinesAreRejectedWithAReason) {
  auto err = [](std::string_view text) {
    auto r = progress_from_json(json::parse(text));
    return r ? std::string("accepted") : r.error();
  };
  const std::string fields = R"("done":1,"failed":0,"remaining":2,"in_flight":1,"seconds":0.5)";
  EXPECT_EQ(err("{\"progress\":{" + fields + "}}"), "accepted");
  EXPECT_EQ(err("{\"progress\":{" + fields + ",\"eta\":3}}"), "progress has an unknown field 'eta'");
  EXPECT_EQ(err("{\"progress\":{" + fields + "},\"ok\":true}"), "progress line has an unknown field 'ok'");
  EXPECT_EQ(err(R"({"progress":{"done":1,"failed":0,"remaining":2,"seconds":0.5}})"), "progress has no \"in_flight\"");
  EXPECT_EQ(err(R"({"progress":{"done":1,"failed":0,"remaining":2,"in_flight":0}})"), "progress has no \"seconds\"");
  EXPECT_EQ(err(R"({"progress":{"done":-1,"failed":0,"remaining":2,"in_flight":0,"seconds":0}})"),
            "progress field \"done\" must be a non-negative integer");
  EXPECT_EQ(err(R"({"progress":{"done":1.5,"failed":0,"remaining":2,"in_flight":0,"seconds":0}})"),
            "progress field \"done\" must be a non-negative integer");
  EXPECT_EQ(err(R"({"progress":{"done":"1","failed":0,"remaining":2,"in_flight":0,"seconds":0}})"),
            "progress field \"done\" must be a non-negative integer");
  EXPECT_EQ(err(R"({"progress":{"done":1,"failed":0,"remaining":2,"in_flight":0,"seconds":-1}})"),
            "progress field \"seconds\" must be a non-negative number");
  EXPECT_EQ(err(R"({"progress":{"done":1,"failed":0,"remaining":2,"in_flight":0,"seconds":"1"}})"),
            "progress field \"seconds\" must be a non-negative number");
  EXPECT_EQ(err(R"({"progress":{"done":1,"failed":2,"remaining":2,"in_flight":0,"seconds":0}})"),
            "progress says more SAs failed than are done");
  EXPECT_EQ(err(R"({"progress":{"done":1,"failed":0,"remaining":2,"in_flight":3,"seconds":0}})"),
            "progress says more SAs are in flight than remain");
  EXPECT_EQ(err(R"({"progress":[1,2]})"), "progress line has no \"progress\" object");
  EXPECT_EQ(err(R"([1])"), "progress line is not a JSON object");
}

}  // namespace
}  // namespace mobike::control
