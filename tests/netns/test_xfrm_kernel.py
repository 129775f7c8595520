#!/usr/bin/env python3
"""The XFRM backend against the running kernel, in a namespace of its own, checked with
ip(8) (an independent reader of the kernel's SAD/SPD):

netns-uml: yes

  1. policies installed, migrated (XFRM_MSG_MIGRATE) and deleted through xfrm_probe
     (XfrmSocket + the message builders) appear in `ip xfrm policy` exactly as meant;
  2. a Child SA through platform::XfrmChildSas: both SAs and out/in/fwd policies in `ip xfrm
     state/policy`, a rekeyed Child SA sharing the policies, an address update (MIGRATE
     or its fallback) visible in both, and removal leaving nothing behind.

Part 2 needs ESP in the kernel. Without it the kernel refuses the first SA
(EPROTONOSUPPORT "Requested type not found", or ENOSYS for a missing crypto
template); the test then checks the refusal left no state behind and exits 77
(skipped) with the kernel's answer -- after part 1 has passed.
"""

import re
import sys

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from netns import (Lab, LineProbe, Namespace, Skip, check, find_binary, log, no_kernel_esp,  # noqa: E402
                   run_test)

LOCAL, REMOTE, NEW_LOCAL = "192.0.2.1", "198.51.100.10", "192.0.2.99"
LOCAL_TS, REMOTE_TS = "10.1.0.0/16", "10.2.0.0/16"


class XfrmProbe(LineProbe):
    """tests/netns/xfrm_probe in a namespace, driven by lines."""

    def __init__(self, lab: Lab, ns: Namespace):
        super().__init__(lab, ns, [str(find_binary("xfrm_probe"))], f"xfrm_probe-{ns.role}")
        line = self._read_line(10)
        check(line == "ready", f"{self.name}: {line}")

    def ok(self, line: str) -> str:
        answer = self.command(line)
        check(answer.startswith("ok"), f"{self.name}: '{line}' -> {answer}")
        return answer


def _oneline(ns: Namespace, *args: str) -> list[str]:
    out = ns.ip("-o", "xfrm", *args).stdout
    return [re.sub(r"\s+", " ", line.replace("\\", " ")).strip()
            for line in out.splitlines() if line.strip()]


def policies(ns: Namespace) -> list[dict]:
    rx = re.compile(r"src (\S+) dst (\S+) .*?dir (\w+) priority (\d+) .*?"
                    r"tmpl src (\S+) dst (\S+) proto esp reqid (\d+) mode tunnel")
    out = []
    for line in _oneline(ns, "policy"):
        m = rx.search(line)
        check(m is not None, f"unexpected `ip xfrm policy` line: {line}")
        out.append(dict(zip(("src", "dst", "dir", "priority", "tsrc", "tdst", "reqid"), m.groups())))
    return out


def states(ns: Namespace) -> list[dict]:
    out = []
    for line in _oneline(ns, "state"):
        m = re.search(r"src (\S+) dst (\S+) proto esp spi (0x[0-9a-f]+) reqid (\d+) mode tunnel", line)
        check(m is not None, f"unexpected `ip xfrm state` line: {line}")
        e = re.search(r"encap type espinudp sport (\d+) dport (\d+)", line)
        out.append({"src": m.group(1), "dst": m.group(2), "spi": int(m.group(3), 16),
                    "reqid": m.group(4), "encap": (int(e.group(1)), int(e.group(2))) if e else None})
    return out


def find_policy(ns: Namespace, src: str, dst: str, direction: str) -> dict | None:
    for p in policies(ns):
        if (p["src"], p["dst"], p["dir"]) == (src, dst, direction):
            return p
    return None


def check_policies(probe: XfrmProbe, ns: Namespace) -> None:
    probe.ok(f"policy add out {LOCAL_TS} {REMOTE_TS} {LOCAL} {REMOTE} 7 1000")
    probe.ok(f"policy add in {REMOTE_TS} {LOCAL_TS} {REMOTE} {LOCAL} 7 1000")
    out = find_policy(ns, LOCAL_TS, REMOTE_TS, "out")
    check(out is not None, f"out policy missing: {policies(ns)}")
    check((out["tsrc"], out["tdst"], out["reqid"], out["priority"]) == (LOCAL, REMOTE, "7", "1000"),
          f"out policy as the kernel has it: {out}")
    inp = find_policy(ns, REMOTE_TS, LOCAL_TS, "in")
    check(inp is not None and (inp["tsrc"], inp["tdst"]) == (REMOTE, LOCAL), f"in policy: {inp}")
    answer = probe.command(f"policy add out {LOCAL_TS} {REMOTE_TS} {LOCAL} {REMOTE} 7 1000")
    check(answer.startswith("error 17 EEXIST"), f"a duplicate policy was not refused: {answer}")
    log("policies installed; `ip xfrm policy` agrees")

    probe.ok(f"policy migrate out {LOCAL_TS} {REMOTE_TS} {LOCAL} {REMOTE} {NEW_LOCAL} {REMOTE} 7")
    probe.ok(f"policy migrate in {REMOTE_TS} {LOCAL_TS} {REMOTE} {LOCAL} {REMOTE} {NEW_LOCAL} 7")
    out = find_policy(ns, LOCAL_TS, REMOTE_TS, "out")
    inp = find_policy(ns, REMOTE_TS, LOCAL_TS, "in")
    check(out is not None and (out["tsrc"], out["tdst"]) == (NEW_LOCAL, REMOTE),
          f"out policy after MIGRATE: {out}")
    check(inp is not None and (inp["tsrc"], inp["tdst"]) == (REMOTE, NEW_LOCAL),
          f"in policy after MIGRATE: {inp}")
    # The kernel matched the template by its old addresses: a second, stale MIGRATE fails.
    answer = probe.command(f"policy migrate out {LOCAL_TS} {REMOTE_TS} {LOCAL} {REMOTE} {NEW_LOCAL} {REMOTE} 7")
    check(answer.startswith("error"), f"stale MIGRATE accepted: {answer}")
    log("MIGRATE moved both templates; `ip xfrm policy` agrees")

    probe.ok(f"policy delete out {LOCAL_TS} {REMOTE_TS}")
    probe.ok(f"policy delete in {REMOTE_TS} {LOCAL_TS}")
    check(policies(ns) == [], f"policies left after delete: {policies(ns)}")


def child_line(child_id: int, spi_in: int, spi_out: int, esp: str) -> str:
    return (f"child install {child_id} local={LOCAL}:4500 remote={REMOTE}:4500 "
            f"spi_in={spi_in:#x} spi_out={spi_out:#x} encap=1 esp={esp} esn=1 "
            f"local_ts={LOCAL_TS} remote_ts={REMOTE_TS}")


def check_child_sa(probe: XfrmProbe, ns: Namespace) -> None:
    answer = probe.command(child_line(1, 0xc1000001, 0xc2000001, "aes128-sha256"))
    if not answer.startswith("ok"):
        check(re.match(r"error \d+ (EPROTONOSUPPORT|ENOSYS) ", answer) is not None,
              f"the kernel refused the SA for another reason than missing ESP: {answer}")
        check(states(ns) == [] and policies(ns) == [],
              f"a refused install left state behind: {states(ns)} {policies(ns)}")
        no_kernel_esp("policies and MIGRATE passed; SAs cannot be tested, the kernel refused "
                   f"ESP: {answer}")

    sas = {s["spi"]: s for s in states(ns)}
    check(set(sas) == {0xc1000001, 0xc2000001}, f"SAs in the kernel: {sas}")
    check((sas[0xc1000001]["src"], sas[0xc1000001]["dst"]) == (REMOTE, LOCAL), f"inbound SA: {sas}")
    check((sas[0xc2000001]["src"], sas[0xc2000001]["dst"]) == (LOCAL, REMOTE), f"outbound SA: {sas}")
    check(sas[0xc2000001]["encap"] == (4500, 4500), f"outbound encapsulation: {sas}")
    dirs = sorted(p["dir"] for p in policies(ns))
    check(dirs == ["fwd", "in", "out"], f"policies of the Child SA: {policies(ns)}")
    log("Child SA installed: 2 SAs, out/in/fwd policies")

    # A rekey: the new Child SA shares the policies (same reqid), so removing the old one
    # keeps them.
    probe.ok(child_line(2, 0xc1000002, 0xc2000002, "aes128-sha256"))
    check(len(states(ns)) == 4 and len(policies(ns)) == 3, f"after rekey: {states(ns)} {policies(ns)}")
    probe.ok("child remove 1")
    check({s["spi"] for s in states(ns)} == {0xc1000002, 0xc2000002}, f"after removing the old: {states(ns)}")
    check(len(policies(ns)) == 3, f"policies went with the old Child SA: {policies(ns)}")

    answer = probe.ok(f"child update 2 local={NEW_LOCAL}:4500 remote={REMOTE}:4510 encap=1")
    log(f"address update: {answer}")
    sas = {s["spi"]: s for s in states(ns)}
    check((sas[0xc1000002]["src"], sas[0xc1000002]["dst"]) == (REMOTE, NEW_LOCAL), f"inbound SA moved: {sas}")
    check((sas[0xc2000002]["src"], sas[0xc2000002]["dst"]) == (NEW_LOCAL, REMOTE), f"outbound SA moved: {sas}")
    check(sas[0xc2000002]["encap"] == (4500, 4510), f"outbound encapsulation after the update: {sas}")
    out = find_policy(ns, LOCAL_TS, REMOTE_TS, "out")
    fwd = find_policy(ns, REMOTE_TS, LOCAL_TS, "fwd")
    check(out is not None and (out["tsrc"], out["tdst"]) == (NEW_LOCAL, REMOTE), f"out policy: {out}")
    check(fwd is not None and (fwd["tsrc"], fwd["tdst"]) == (REMOTE, NEW_LOCAL), f"fwd policy: {fwd}")

    usage = probe.ok("child usage 2")
    check(re.fullmatch(r"ok in_bytes=\d+ in_packets=\d+ out_bytes=\d+ out_packets=\d+", usage) is not None,
          f"usage: {usage}")

    probe.ok("child remove 2")
    check(states(ns) == [] and policies(ns) == [], f"left after remove: {states(ns)} {policies(ns)}")


def test(lab: Lab) -> None:
    ns = lab.namespace("xfrm")
    check(policies(ns) == [] and states(ns) == [], "a fresh namespace with XFRM state")
    probe = XfrmProbe(lab, ns)
    check_policies(probe, ns)
    check_child_sa(probe, ns)


if __name__ == "__main__":
    run_test(test, "XFRM backend against the kernel")
