#!/usr/bin/env python3
"""`mobikectl switch` of many SAs can be stopped, and says what it did:

    client 10.1.0.2 -- nat 10.1.0.1 | 198.51.100.2 (MASQUERADE) -- gateway 198.51.100.10, .20

mobike-bench holds 12 IKE SAs towards the gateway's 198.51.100.10 (one engine, MOBIKE with
switch support). Then, on the gateway:

  1. `mobikectl switch --all --to 198.51.100.20 --rate 2` and, 2 s later, a second
     mobikectl sends `switch --cancel`: the cancel is answered with the number of SAs not
     started; the first command ends with every started SA switched and every other one
     "not started" (detail "cancelled"), and exactly the switched ones are on .20;
  2. the same with SIGINT to the waiting mobikectl (Ctrl-C): it cancels and still prints
     the outcome, as above;
  3. a slow switch back to .10 and SIGTERM to mobiked: the waiting mobikectl gets the
     partial result (SAs not started: "mobiked is stopping") instead of a dropped
     connection.
Checks exact counts where the rate makes them certain and consistency everywhere: the
reported outcomes cover every SA once, and the gateway's own list agrees.
"""

import json
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobiked import MConn, Mobiked  # noqa: E402
from netns import Failure, Lab, check, find_binary, log, require_commands, require_netns, run_test  # noqa: E402
from topology import setup_nat  # noqa: E402

CLIENT, NAT_IN, NAT_OUT = "10.1.0.2", "10.1.0.1", "198.51.100.2"
GW_A, GW_B, GW_INNER = "198.51.100.10", "198.51.100.20", "203.0.113.1"
PSK = "mobike-bench-psk-0123456789abcdef"
COUNT = 12
RATE = 2.0  # SAs started per second: 12 SAs would take 6 s


def requires() -> None:
    require_netns()
    require_commands("iptables")
    for b in ("mobiked", "mobikectl", "mobike-bench"):
        find_binary(b)


def summary(answer: dict) -> dict:
    return {k: answer.get(k) for k in ("switched", "refused", "failed", "not_started")}


def on_b(d: Mobiked, addr: str) -> set[int]:
    return {sa["id"] for sa in d.list_sas() if sa["local"]["addr"] == addr and sa["state"] == "ESTABLISHED"}


def check_outcome(answer: dict, d: Mobiked, to: str, not_started_detail: str) -> None:
    sas = answer.get("sas", [])
    check(len(sas) == COUNT and len({s["sa"] for s in sas}) == COUNT,
          f"the answer does not cover each of the {COUNT} SAs once: {sas}")
    counts = summary(answer)
    check(sum(counts.values()) == COUNT, f"the counts do not add up to {COUNT}: {counts}")
    check(counts["refused"] == 0 and counts["failed"] == 0, f"switches refused or failed: {answer}")
    switched = {s["sa"] for s in sas if s["result"] == "switched"}
    check(0 < len(switched) < COUNT, f"the rate should have left some SAs switched and some not: {counts}")
    others = [s for s in sas if s["result"] != "switched"]
    check(all(s["result"] == "not started" and s["detail"] == not_started_detail for s in others),
          f"SAs not switched should read 'not started: {not_started_detail}': {others}")
    check(on_b(d, to) == switched, f"the gateway's SAs on {to} {sorted(on_b(d, to))} are not the switched "
                                   f"ones {sorted(switched)}")


def test(lab: Lab) -> None:
    cli, nat, gw = lab.namespace("cli"), lab.namespace("nat"), lab.namespace("gw")
    lab.veth(cli, "eth0", nat, "in0")
    lab.veth(nat, "out0", gw, "eth0")
    cli.add_address("eth0", CLIENT + "/24")
    cli.add_route("default", via=NAT_IN)
    nat.add_address("in0", NAT_IN + "/24")
    nat.add_address("out0", NAT_OUT + "/24")
    gw.add_address("eth0", GW_A + "/24")
    gw.add_address("eth0", GW_B + "/24")
    gw.add_address("lo", GW_INNER + "/32")
    setup_nat(nat, "10.1.0.0/24", "out0", "in0")

    d = Mobiked(lab, gw, name="gateway", log_level="info")
    d.start([MConn("bench", local_id="res@mobike.test", remote_id="bench@mobike.test", psk=PSK,
                   remote_addrs=["%any"], local_ts=[GW_INNER + "/32"], remote_ts=["10.0.0.0/8"],
                   dpd_delay="0s", rekey_time="0", child_rekey_time="0")])
    ready = lab.dir / "ready"
    bench = cli.spawn([str(find_binary("mobike-bench")), "handshake", "--target", GW_A, "--local", CLIENT,
                       "--count", str(COUNT), "--concurrency", "16", "--psk", PSK,
                       "--local-id", "bench@mobike.test", "--remote-id", "res@mobike.test",
                       "--ts-pool", "10.0.0.0/8", "--remote-ts", GW_INNER + "/32", "--settle", "0.2",
                       "--hold", "120", "--ready-file", str(ready), "--json"],
                      name="mobike-bench", stdout_pipe=True)
    deadline = time.monotonic() + 60
    while not ready.exists():
        check(bench.alive() and time.monotonic() < deadline,
              "mobike-bench did not get its SAs up:\n" + bench.log_text()[-2000:])
        time.sleep(0.2)
    check(len(on_b(d, GW_A)) == COUNT, f"the gateway does not hold {COUNT} SAs on {GW_A}: {d.list_sas()}")
    ctl = [str(find_binary("mobikectl")), "--socket", str(d.socket), "--timeout", "60"]

    # mobikectl needs no namespace: it talks to the gateway through its Unix socket.
    def slow_switch(to: str) -> subprocess.Popen:
        return subprocess.Popen(ctl + ["switch", "--all", "--to", to, "--rate", str(RATE), "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def mobikectl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(ctl + list(args), capture_output=True, text=True, timeout=30)

    # 1. switch --cancel from a second mobikectl.
    waiting = slow_switch(GW_B)
    time.sleep(2.0)
    cancel = mobikectl("switch", "--cancel", "--json")
    log(f"switch --cancel: rc {cancel.returncode}: {cancel.stdout.strip()} {cancel.stderr.strip()}")
    check(cancel.returncode == 0, f"switch --cancel failed: {cancel.stdout}{cancel.stderr}")
    cancelled = json.loads(cancel.stdout)["cancelled"]
    out, err = waiting.communicate(timeout=30)
    log(f"the switch answered (rc {waiting.returncode}): {summary(json.loads(out))}")
    check(waiting.returncode == 1, f"a partial switch must exit 1, not {waiting.returncode}: {err}")
    answer = json.loads(out)
    check(answer["not_started"] == cancelled, f"cancel said {cancelled} not started, the switch {answer}")
    check_outcome(answer, d, GW_B, "cancelled")
    # Nothing runs any more: a new switch is accepted, and cancelling with none running is an error.
    none = mobikectl("switch", "--cancel")
    check(none.returncode == 1 and "no switch is running" in none.stderr, f"cancel with nothing running: {none}")

    # 2. Ctrl-C in the waiting mobikectl. The SAs still on A go to B; those on B already
    # come first (in id order) and are not started, so wait until some of the others ran.
    left = len(on_b(d, GW_A))
    waiting = slow_switch(GW_B)
    time.sleep((COUNT - left) / RATE + 1.5)
    waiting.send_signal(signal.SIGINT)
    out, err = waiting.communicate(timeout=30)
    log(f"after SIGINT (rc {waiting.returncode}): {summary(json.loads(out))}; stderr {err.strip()}")
    check("cancelling" in err, f"mobikectl did not say it was cancelling: {err}")
    answer = json.loads(out)
    sas = answer["sas"]
    # SAs already on B were not started ("already on ...", from the engine) or switched.
    moved = [s for s in sas if s["result"] == "switched"]
    check(0 < len(moved) < left and answer["refused"] == 0 and answer["failed"] == 0,
          f"after Ctrl-C: {summary(answer)} with {left} SAs left on {GW_A}")
    check(any(s["detail"] == "cancelled" for s in sas), f"no SA reads 'cancelled' after Ctrl-C: {sas}")

    # 3. SIGTERM to mobiked during a slow switch back to A.
    waiting = slow_switch(GW_A)
    time.sleep(1.5)
    d.proc.popen.send_signal(signal.SIGTERM)
    out, err = waiting.communicate(timeout=30)
    log(f"mobiked stopped during a switch (mobikectl rc {waiting.returncode}): {out.strip()[:300]} {err.strip()}")
    check(out.lstrip().startswith("{"), f"the waiting mobikectl got no result when mobiked stopped: {err}{out}")
    answer = json.loads(out)
    check(any(s["detail"] == "mobiked is stopping" for s in answer["sas"]),
          f"no SA reads 'mobiked is stopping': {answer['sas']}")
    check(answer["switched"] + answer["failed"] + answer["not_started"] + answer["refused"] == COUNT,
          f"the partial result does not cover every SA: {summary(answer)}")
    d.proc.popen.wait(15)
    bench.stop()


if __name__ == "__main__":
    run_test(test, "mobikectl switch: cancelled, interrupted, and cut short by a stopping mobiked",
             requires=requires, timeout=180)
