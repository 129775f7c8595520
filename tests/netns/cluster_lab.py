"""A gateway cluster in namespaces: three mobiked nodes with their own public addresses,
a protected host on a LAN behind them, clients behind a MASQUERADE NAT, and etcd started
here (one member, or three for the fault cases).

    ini eth0 10.1.0.2 -- nat in0 10.1.0.1 | out0 198.51.100.2 --+
                                                                 +-- wan br0 -- gw1 eth0 198.51.100.11
                                                                 |           -- gw2 eth0 198.51.100.12
                                                                 |           -- gw3 eth0 198.51.100.13
    host eth0 10.50.0.100 -- lan br0 10.50.0.250 (etcd 10.50.0.250/.251/.252:2379)
                                 -- gw1 eth1 10.50.0.1, gw2 eth1 10.50.0.2, gw3 eth1 10.50.0.3

With ipv6=True the outside is dual-stack: ini 2001:db8:1::2 -- nat 2001:db8:1::1 |
2001:db8:100::2 (MASQUERADE as for IPv4) -- gw1..3 2001:db8:100::11..13, and the client
reaches gw1 over IPv6 (its tunnel still carries IPv4 to the LAN).

The client's inner address is 192.0.2.1 (on ini's lo); the host reaches 192.0.2.0/24
on-link on its LAN (a pool of client addresses, as with strongSwan's farp), so the node
that holds a client's SA must answer ARP for its address: return_traffic = proxy_arp.
With return_traffic = hook the host routes 192.0.2.1 via the owner instead, set by the
hook. The NAT forwards only replies back in (address-and-port-dependent filtering): a
gateway the client never sent to cannot reach it, except from the address it did send to.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

from mobiked import MConn, Mobiked
from netns import Lab, Namespace, Skip, check, log, require_commands, require_netns, wait_until
from topology import setup_nat

ETCD = os.environ.get("MOBIKE_ETCD", "/usr/bin/etcd")

INI_ADDR, NAT_INSIDE, NAT_OUTSIDE = "10.1.0.2", "10.1.0.1", "198.51.100.2"
GW_PUBLIC = {"gw1": "198.51.100.11", "gw2": "198.51.100.12", "gw3": "198.51.100.13"}
GW_LAN = {"gw1": "10.50.0.1", "gw2": "10.50.0.2", "gw3": "10.50.0.3"}
HOST = "10.50.0.100"
ETCD_ADDRS = ["10.50.0.250", "10.50.0.251", "10.50.0.252"]
INI6, NAT_INSIDE6, NAT_OUTSIDE6 = "2001:db8:1::2", "2001:db8:1::1", "2001:db8:100::2"
GW_PUBLIC6 = {"gw1": "2001:db8:100::11", "gw2": "2001:db8:100::12", "gw3": "2001:db8:100::13"}
CLIENT_INNER = "192.0.2.1"
CLIENT_POOL = "192.0.2.0/24"
LAN = "10.50.0.0/24"


def requires() -> None:
    require_netns()
    require_commands("iptables", "curl")
    if not os.access(ETCD, os.X_OK):
        raise Skip(f"etcd not installed ({ETCD}; Debian's etcd-server)")


class Etcd:
    """etcd members on the LAN bridge's addresses, each a process of the lab."""

    def __init__(self, lab: Lab, ns: Namespace, members: int = 1):
        self.lab, self.ns = lab, ns
        self.addrs = ETCD_ADDRS[:members]
        self.names = [f"e{i + 1}" for i in range(members)]
        self.procs = {}
        cluster = ",".join(f"{n}=http://{a}:2380" for n, a in zip(self.names, self.addrs))
        self.argv = {}
        for name, addr in zip(self.names, self.addrs):
            data = lab.dir / f"etcd-{name}"
            self.argv[name] = [ETCD, "--name", name, "--data-dir", str(data),
                               "--listen-client-urls", f"http://{addr}:2379",
                               "--advertise-client-urls", f"http://{addr}:2379",
                               "--listen-peer-urls", f"http://{addr}:2380",
                               "--initial-advertise-peer-urls", f"http://{addr}:2380",
                               "--initial-cluster", cluster, "--initial-cluster-state", "new",
                               "--heartbeat-interval", "50", "--election-timeout", "500",
                               "--log-level", "warn"]
        for name in self.names:
            self.start(name)
        wait_until(self.healthy, 20, "etcd answers")

    @property
    def endpoints(self) -> list[str]:
        return [f"http://{a}:2379" for a in self.addrs]

    def start(self, name: str) -> None:
        self.procs[name] = self.lab.spawn(self.ns, self.argv[name], name=f"etcd-{name}")

    def kill(self, name: str) -> None:
        self.procs[name].stop(timeout=0.1)

    def healthy(self) -> bool:
        # The JSON gateway answers a range once the member serves.
        r = self.ns.run(["curl", "-s", "-m", "2", "-X", "POST", "-d", '{"key":"AA=="}',
                         f"{self.endpoints[0]}/v3/kv/range"], check=False, timeout=10)
        return r.returncode == 0 and "header" in r.stdout

    def get_prefix(self, prefix: str) -> dict[str, str]:
        """key -> value (decoded) under prefix, through the JSON gateway."""
        import base64
        key = base64.b64encode(prefix.encode()).decode()
        end = bytearray(prefix.encode())
        end[-1] += 1
        body = json.dumps({"key": key, "range_end": base64.b64encode(bytes(end)).decode()})
        for ep in self.endpoints:
            r = self.ns.run(["curl", "-s", "-m", "2", "-X", "POST", "-d", body, f"{ep}/v3/kv/range"],
                            check=False, timeout=10)
            if r.returncode == 0 and "header" in r.stdout:
                out = {}
                for kv in json.loads(r.stdout).get("kvs", []):
                    out[base64.b64decode(kv["key"]).decode(errors="replace")] = \
                        base64.b64decode(kv.get("value", "")).decode("latin-1")
                return out
        raise AssertionError("no etcd member answers")

    def put(self, key: str, value: bytes) -> None:
        import base64
        body = json.dumps({"key": base64.b64encode(key.encode()).decode(),
                           "value": base64.b64encode(value).decode()})
        r = self.ns.run(["curl", "-s", "-m", "2", "-X", "POST", "-d", body, f"{self.endpoints[0]}/v3/kv/put"],
                        check=False, timeout=10)
        check(r.returncode == 0 and "header" in r.stdout, f"etcd put {key}: {r.stdout}{r.stderr}")


def _has(cmd: str) -> bool:
    from shutil import which
    return which(cmd) is not None


class ClusterLab:
    def __init__(self, lab: Lab, *, etcd_members: int = 1, return_traffic: str = "proxy_arp",
                 nodes: tuple[str, ...] = ("gw1", "gw2", "gw3"), switch_sender: str = "old",
                 source_filter: bool = False, ipv6: bool = False, announce: bool = True):
        self.lab = lab
        self.announce = announce
        self.ipv6 = ipv6
        # Where the client reaches the nodes, and its own address before the NAT.
        self.public = GW_PUBLIC6 if ipv6 else GW_PUBLIC
        self.ini_addr = INI6 if ipv6 else INI_ADDR
        self.return_traffic = return_traffic
        self.switch_sender = switch_sender
        self.ini, self.nat, self.wan, self.lan, self.host = (
            lab.namespace(r) for r in ("ini", "nat", "wan", "lan", "host"))
        self.gw = {n: lab.namespace(n) for n in nodes}
        lab.veth(self.ini, "eth0", self.nat, "in0")
        lab.veth(self.nat, "out0", self.wan, "pn")
        lab.veth(self.host, "eth0", self.lan, "ph")
        self.wan.ip("link", "add", "br0", "type", "bridge")
        self.lan.ip("link", "add", "br0", "type", "bridge")
        self.wan.ip("link", "set", "pn", "master", "br0")
        self.lan.ip("link", "set", "ph", "master", "br0")
        for n, ns in self.gw.items():
            lab.veth(ns, "eth0", self.wan, f"p{n}")
            lab.veth(ns, "eth1", self.lan, f"l{n}")
            self.wan.ip("link", "set", f"p{n}", "master", "br0")
            self.lan.ip("link", "set", f"l{n}", "master", "br0")
            ns.add_address("eth0", GW_PUBLIC[n] + "/24")
            ns.add_address("eth1", GW_LAN[n] + "/24")
            ns.sysctl("net.ipv4.ip_forward", 1)
            ns.sysctl("net.ipv4.conf.all.rp_filter", 0)
            ns.sysctl("net.ipv4.conf.eth1.rp_filter", 0)
        self.wan.link_up("br0")
        self.lan.link_up("br0")
        for a in ETCD_ADDRS:
            self.lan.add_address("br0", a + "/24")
        self.ini.add_address("eth0", INI_ADDR + "/24")
        self.ini.add_address("lo", CLIENT_INNER + "/32")
        self.ini.add_route("default", via=NAT_INSIDE)
        self.nat.add_address("in0", NAT_INSIDE + "/24")
        self.nat.add_address("out0", NAT_OUTSIDE + "/24")
        setup_nat(self.nat, "10.1.0.0/24", "out0", "in0")
        if ipv6:
            self.ini.add_address("eth0", INI6 + "/64")
            self.ini.add_route("default", via=NAT_INSIDE6)
            self.nat.add_address("in0", NAT_INSIDE6 + "/64")
            self.nat.add_address("out0", NAT_OUTSIDE6 + "/64")
            self.nat.sysctl("net.ipv6.conf.all.forwarding", 1)
            self.nat.iptables("-t", "nat", "-A", "POSTROUTING", "-s", "2001:db8:1::/64", "-o", "out0",
                              "-j", "MASQUERADE", v6=True)
            self.nat.iptables("-P", "FORWARD", "DROP", v6=True)
            self.nat.iptables("-A", "FORWARD", "-i", "in0", "-o", "out0", "-j", "ACCEPT", v6=True)
            self.nat.iptables("-A", "FORWARD", "-i", "out0", "-o", "in0", "-m", "conntrack",
                              "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT", v6=True)
            for n, ns in self.gw.items():
                ns.add_address("eth0", GW_PUBLIC6[n] + "/64")
        if source_filter:
            # Source address validation (BCP 38) at the router: a node may only send with
            # its own address. Counted in the ANTISPOOF chain.
            self.nat.iptables("-N", "ANTISPOOF")
            self.nat.iptables("-I", "FORWARD", "-i", "out0", "-j", "ANTISPOOF")
            for n, ns in self.gw.items():
                self.nat.iptables("-A", "ANTISPOOF", "-m", "mac", "--mac-source", mac_of(ns, "eth0"),
                                  "!", "-s", GW_PUBLIC[n], "-j", "DROP")
        self.host.add_address("eth0", HOST + "/24")
        if return_traffic == "proxy_arp":
            # The client pool is on-link: whoever answers ARP for an address gets its traffic.
            self.host.ip("route", "add", CLIENT_POOL, "dev", "eth0")
        self.key_file = lab.dir / "cluster.key"
        self.key_file.write_text(secrets.token_hex(32) + "\n")
        os.chmod(self.key_file, 0o600)
        self.etcd = Etcd(lab, self.lan, etcd_members)
        self.nodes: dict[str, Mobiked] = {}

    def gateway_conn(self) -> MConn:
        return MConn(name="rw", local_id="gw.cluster.test", remote_id=None, remote_addrs=["%any"],
                     local_ts=[LAN], remote_ts=[CLIENT_POOL], dpd_delay="30s")

    def hook_script(self, node: str) -> Path:
        """What a routed design runs: point the host's route for the client at this node;
        on release, withdraw it only if it still points here (the new owner may have
        taken it already)."""
        path = self.lab.dir / f"hook-{node}.sh"
        host = self.host.name
        path.write_text(
            "#!/bin/sh\n"
            f"echo \"$(date +%s.%N) $MOBIKED_VERB $MOBIKED_NODE $MOBIKED_REMOTE_TS\" >> {self.lab.dir}/hook.log\n"
            "for ts in $MOBIKED_REMOTE_TS; do\n"
            "  case $MOBIKED_VERB in\n"
            f"    take) ip netns exec {host} ip route replace \"$ts\" via {GW_LAN[node]} ;;\n"
            f"    release) ip netns exec {host} ip route del \"$ts\" via {GW_LAN[node]} 2>/dev/null ;;\n"
            "  esac\n"
            "done\n"
            "exit 0\n")
        os.chmod(path, 0o755)
        return path

    def start_node(self, node: str, *, lease_ttl: str = "3s", etcd: list[str] | None = None,
                   extra: str = "", retransmit_timeout: float = 1.0, metrics: str | None = None) -> Mobiked:
        m = Mobiked(self.lab, self.gw[node], f"mobiked-{node}", dataplane="userspace", log_level="debug",
                    retransmit_timeout=retransmit_timeout,
                    daemon_extra=f"metrics = {json.dumps(metrics)}\n" if metrics else "")
        section = ("\n[cluster]\n"
                   f"node = {json.dumps(node)}\n"
                   f"addresses = {json.dumps([GW_PUBLIC[node]] + ([GW_PUBLIC6[node]] if self.ipv6 else []))}\n"
                   f"etcd = {json.dumps(etcd or self.etcd.endpoints)}\n"
                   f"key_file = {json.dumps(str(self.key_file))}\n"
                   f"lease_ttl = {json.dumps(lease_ttl)}\n"
                   f"move_timeout = \"20s\"\n"
                   f"switch_sender = {json.dumps(self.switch_sender)}\n"
                   f"announce_addresses = {json.dumps(self.announce)}\n"
                   f"return_traffic = {json.dumps(self.return_traffic)}\n")
        if self.return_traffic == "proxy_arp":
            section += 'lan_interface = "eth1"\n'
        elif self.return_traffic == "hook":
            section += f"hook = {json.dumps(str(self.hook_script(node)))}\n"
        m.daemon_section += section + extra
        m.start([self.gateway_conn()])
        self.nodes[node] = m
        return m

    def start_nodes(self, nodes: tuple[str, ...] | None = None, retransmit_timeout: float = 1.0,
                    metrics: str | None = None) -> None:
        """metrics: the endpoint every node serves in its own namespace."""
        nodes = nodes or tuple(self.gw)
        for n in nodes:
            self.start_node(n, retransmit_timeout=retransmit_timeout, metrics=metrics)
        self.wait_members(nodes)

    def wait_members(self, nodes: tuple[str, ...]) -> None:
        for n in nodes:
            wait_until(lambda n=n: len(self.status(n)["nodes"]) == len(nodes), 15,
                       f"{n} sees all {len(nodes)} nodes")

    def bench(self, count: int, hold: float, *, ts_pool: str = "192.0.2.0/24"):
        """mobike-bench's `count` SAs from ini to gw1, held for `hold` seconds (they follow
        switches to the cluster's addresses); returns (process, ready file)."""
        from netns import find_binary
        ready = self.lab.dir / "bench.ready"
        proc = self.lab.spawn(self.ini, [str(find_binary("mobike-bench")), "handshake", "--target", GW_PUBLIC["gw1"],
                                         "--count", str(count), "--psk", MConn.psk,
                                         "--local-id", "bench.cluster.test", "--ts-pool", ts_pool,
                                         "--remote-ts", LAN, "--switch-allow", "198.51.100.0/24",
                                         "--hold", str(hold), "--ready-file", str(ready), "--json",
                                         "--retransmit-timeout", "1", "--retransmit-tries", "4"],
                              name="mobike-bench", stdout_pipe=True)
        wait_until(ready.exists, 60, "mobike-bench's SAs up")
        return proc, ready

    @staticmethod
    def bench_report(proc, timeout: float) -> dict:
        out, _ = proc.popen.communicate(timeout=timeout)
        line = next((ln for ln in reversed(out.splitlines()) if ln.startswith("{")), None)
        check(line is not None, f"mobike-bench printed no report: {out[-2000:]}")
        rep = json.loads(line)
        hold = rep.get("hold", {})
        return {"held": hold.get("held"), "moved": hold.get("moved"), "lost": hold.get("lost"),
                "rekeyed": hold.get("ike_rekeys"), "remote_addresses": hold.get("remote_addresses"),
                "established": rep.get("established")}

    def status(self, node: str) -> dict:
        return json.loads(self.nodes[node].ctl("cluster", "status", "--json").stdout)

    def client(self, *, allow_cluster: bool = True, name: str = "mobiked-ini") -> Mobiked:
        m = Mobiked(self.lab, self.ini, name, dataplane="userspace", log_level="debug")
        extra = {"switch_allow": ["198.51.100.0/24", "2001:db8:100::/64"]} if allow_cluster else {}
        conn = MConn(name="home", local_id="client.cluster.test", remote_id="gw.cluster.test",
                     local_ts=[CLIENT_INNER + "/32"], remote_ts=[LAN], remote_addrs=[self.public["gw1"]],
                     start="initiate", extra=extra)
        m.start([conn])
        return m

    def strongswan_client(self, *, log_levels: dict | None = None, retransmit_timeout: float | None = None,
                          retransmit_tries: int | None = None, conn_extra: dict | None = None):
        """A strongSwan client (charon, kernel-libipsec) with an IKE SA to gw1 and traffic
        flowing: returns (charon, its view of the SA)."""
        from netns import Charon, Conn, established, require_strongswan
        require_strongswan()
        charon = Charon(self.lab, self.ini, log_levels=log_levels, retransmit_timeout=retransmit_timeout,
                        retransmit_tries=retransmit_tries).start()
        charon.load([Conn("home", local_id="swan.cluster.test", remote_id="gw.cluster.test",
                          local_addrs=[INI_ADDR], remote_addrs=[GW_PUBLIC["gw1"]],
                          local_ts=[CLIENT_INNER + "/32"], remote_ts=["10.50.0.0/24"], **(conn_extra or {}))])
        charon.initiate(child="home")
        sa = established(charon, "home")
        wait_ping(self.ini, CLIENT_INNER, HOST)
        return charon, sa

    def sas_on(self, node: str) -> list[dict]:
        return self.nodes[node].list_sas()

    def move(self, node: str, sa: int, to: str, check_rc: bool = True) -> dict:
        r = self.nodes[node].ctl("cluster", "move", "--sa", str(sa), "--to", to, "--json", check=False)
        if check_rc:
            check(r.returncode == 0, f"cluster move on {node} failed ({r.returncode}): {r.stderr}{r.stdout}")
        return json.loads(r.stdout) if r.stdout.strip().startswith("{") else {"error": r.stderr}


def antispoof_drops(nat: Namespace) -> int:
    """Packets the router dropped for a source address not the sending node's own."""
    out = nat.iptables("-L", "ANTISPOOF", "-v", "-x", "-n").stdout
    return sum(int(ln.split()[0]) for ln in out.splitlines()[2:] if ln.strip())


def host_neigh(host: Namespace, addr: str) -> str:
    return host.ip("neigh", "show", addr, check=False).stdout.strip()


def mac_of(ns: Namespace, dev: str) -> str:
    return json.loads(ns.ip("-j", "link", "show", dev).stdout)[0]["address"]


def wait_ping(ns: Namespace, src: str, dst: str, timeout: float = 15) -> None:
    def ok():
        return ns.run(["ping", "-n", "-c", "1", "-W", "1", "-I", src, dst], check=False).returncode == 0
    wait_until(ok, timeout, f"ping {src} -> {dst} through the tunnel")


def log_gap(stats: dict) -> None:
    log(f"  ping: {stats['replies']} replies, {stats['lost']} lost, longest gap {stats['gap_ms']:.0f} ms")
    time.sleep(0)
