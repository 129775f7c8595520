#!/usr/bin/env python3
"""The etcd v3 client (src/platform/etcd_client.h) against real etcd processes.

tests/netns/etcd_client_it, a GoogleTest binary, runs inside a namespace of its own that
has nothing but lo; there it starts, kills (SIGKILL) and restarts Debian's etcd
(/usr/bin/etcd, or $MOBIKE_ETCD) itself, on 127.0.0.1:
  one member: lease grant, keepalive and expiry (TTL 2 s) and revoke; put, get, range and
    delete; a transaction that takes ownership by comparing mod_revision (the stale one
    fails); compares on every target; 1000 puts split into transactions of <= 128 ops;
    a watch from a past revision (history, then live events) and its stop();
    failover past a blackholed and a refusing endpoint;
  no etcd: a refused endpoint, a blackholed one (127.0.0.2, TCP dropped by iptables here)
    and a server that never answers, each an error within the timeout;
  one member killed and restarted under a watch: reported, resumed after the last event;
  a three-member cluster: one member killed, calls and the watch go on at another with
    no event lost; two killed, the last one answers "no leader" at once.
Nothing leaves the namespace, which the Lab deletes with every process in it.
"""

from __future__ import annotations

import os
import sys
import time

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from netns import Lab, Skip, check, find_binary, log, require_commands, require_netns, run_test, tail  # noqa: E402

ETCD = os.environ.get("MOBIKE_ETCD", "/usr/bin/etcd")


def requires() -> None:
    require_netns()
    require_commands("iptables")
    if not os.access(ETCD, os.X_OK):
        raise Skip(f"etcd not installed ({ETCD}; Debian's etcd-server)")


def test(lab: Lab) -> None:
    ns = lab.namespace("etcd")
    ns.iptables("-A", "OUTPUT", "-d", "127.0.0.2", "-p", "tcp", "-j", "DROP")
    scratch = lab.dir / "etcd"
    scratch.mkdir()
    env = dict(os.environ, MOBIKE_ETCD=ETCD, MOBIKE_ETCD_DIR=str(scratch), MOBIKE_ETCD_BLACKHOLE="127.0.0.2",
               MOBIKE_ETCD_IN_NETNS="1")
    start = time.monotonic()
    it = ns.spawn([str(find_binary("etcd_client_it"))], name="etcd_client_it", env=env)
    rc = it.wait(90)
    output = it.log_text()
    print(output, flush=True)
    check(rc != 77, "etcd_client_it skipped itself inside the namespace: " + tail(output, 5))
    check(rc == 0, f"etcd_client_it failed ({rc})")
    log(f"etcd_client_it: {time.monotonic() - start:.1f}s")


if __name__ == "__main__":
    run_test(test, "etcd client", requires=requires)
