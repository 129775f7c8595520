"""Two mobiked through a NAT in network namespaces (see scripts/demo)."""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "netns"))

from mobiked import MConn, Mobiked  # noqa: E402
from netns import Lab, nat_topology, require_netns  # noqa: E402


def main() -> int:
    require_netns()
    with Lab() as lab:
        t = nat_topology(lab)
        print(f"topology: client {t.INI_ADDR} -> NAT {t.NAT_INSIDE}|{t.NAT_OUTSIDE} -> gateway {t.RES_ADDR}")
        gw = Mobiked(lab, t.res, "gateway", log_level="info").start([MConn(
            "clients", local_id="gw@mobike.test", remote_id=None, remote_addrs=["%any"],
            local_ts=[t.RES_INNER + "/32"])])
        client = Mobiked(lab, t.ini, "client", log_level="info").start([MConn(
            "office", local_id="client@mobike.test", remote_id="gw@mobike.test",
            remote_addrs=[t.RES_ADDR], local_ts=[t.INI_INNER + "/32"], remote_ts=[t.RES_INNER + "/32"])])
        t0 = time.monotonic()
        client.ctl("initiate", "office")
        client.established("office")
        gw.established("clients")
        print(f"\nIKE SA and Child SA established in {time.monotonic() - t0:.3f}s\n")
        for name, d in (("client", client), ("gateway", gw)):
            print(f"==== {name}: mobikectl list-sas")
            print(d.ctl("list-sas").stdout)
        print("==== client: mobikectl list-sas --json")
        print(client.ctl("list-sas", "--json").stdout)
        client.ctl("terminate", "office")
    return 0


if __name__ == "__main__":
    sys.exit(main())
