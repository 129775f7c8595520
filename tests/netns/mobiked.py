"""Runs mobiked in a test namespace and reads its own view through mobikectl."""

import json
import subprocess
from dataclasses import dataclass, field

from netns import Failure, Lab, Namespace, find_binary, tail, wait_until


@dataclass
class MConn:
    """One mobiked [[connection]] with one child: PSK authentication, or certificates
    with auth = "pubkey" (or per direction local_auth / remote_auth = "psk" | "pubkey").
    None leaves a key out: local_id None is the certificate's subject DN; psk None
    writes no psk (it is also left out when neither direction uses a PSK)."""
    name: str
    local_id: str | None
    remote_id: str | None
    psk: str | None = "mobike-test-psk-0123456789"
    local_addrs: list[str] = field(default_factory=list)
    remote_addrs: list[str] = field(default_factory=list)
    ike_proposals: str = "aes128gcm16-prfsha256-x25519"
    esp_proposals: str = "aes128gcm16"
    local_ts: list[str] = field(default_factory=list)
    remote_ts: list[str] = field(default_factory=list)
    dpd_delay: str = "30s"
    rekey_time: str = "4h"
    child_rekey_time: str = "1h"
    mobike: bool = True
    start: str = "none"
    child: str | None = None
    extra: dict = field(default_factory=dict)  # more connection-level keys (switch_prefer, ...)
    child_extra: dict = field(default_factory=dict)  # more child keys (rekey_bytes, ...)
    # Certificate authentication (issue 13); every None / empty one is left out.
    auth: str | None = None          # "psk" | "pubkey", both directions
    local_auth: str | None = None    # per direction, instead of auth
    remote_auth: str | None = None
    local_certs: list[str] = field(default_factory=list)  # PEM: ours, then intermediates to send
    local_key: str | None = None     # PEM (PKCS#8), mode 0600
    cacerts: list[str] = field(default_factory=list)      # trust anchors for the peer's certificate
    crls: list[str] = field(default_factory=list)
    send_cert: str | None = None     # "always" | "ifasked" (the default) | "never"
    send_certreq: bool | None = None  # the default: true

    @property
    def uses_psk(self) -> bool:
        local = self.local_auth or self.auth or "psk"
        remote = self.remote_auth or self.auth or "psk"
        return "psk" in (local, remote)

    def toml(self) -> str:
        def arr(v):
            return "[" + ", ".join(json.dumps(str(x)) for x in v) + "]"
        lines = ["[[connection]]", f"name = {json.dumps(self.name)}"]
        if self.local_id is not None:
            lines.append(f"local_id = {json.dumps(self.local_id)}")
        if self.psk is not None and self.uses_psk:
            lines.append(f"psk = {json.dumps(self.psk)}")
        lines += [f"ike_proposals = {json.dumps(self.ike_proposals)}",
                 f"esp_proposals = {json.dumps(self.esp_proposals)}",
                 f"dpd_delay = {json.dumps(self.dpd_delay)}",
                 f"rekey_time = {json.dumps(self.rekey_time)}",
                 f"mobike = {'true' if self.mobike else 'false'}",
                 f"start = {json.dumps(self.start)}"]
        if self.remote_id:
            lines.append(f"remote_id = {json.dumps(self.remote_id)}")
        if self.local_addrs:
            lines.append(f"local_addrs = {arr(self.local_addrs)}")
        if self.remote_addrs:
            lines.append(f"remote_addrs = {arr(self.remote_addrs)}")
        for key in ("auth", "local_auth", "remote_auth", "local_key", "send_cert"):
            value = getattr(self, key)
            if value is not None:
                lines.append(f"{key} = {json.dumps(str(value))}")
        for key in ("local_certs", "cacerts", "crls"):
            if getattr(self, key):
                lines.append(f"{key} = {arr(getattr(self, key))}")
        if self.send_certreq is not None:
            lines.append(f"send_certreq = {'true' if self.send_certreq else 'false'}")
        lines += [f"{k} = {json.dumps(v)}" for k, v in self.extra.items()]
        lines += ["", "  [[connection.child]]", f"  name = {json.dumps(self.child or self.name)}",
                  f"  rekey_time = {json.dumps(self.child_rekey_time)}"]
        if self.local_ts:
            lines.append(f"  local_ts = {arr(self.local_ts)}")
        if self.remote_ts:
            lines.append(f"  remote_ts = {arr(self.remote_ts)}")
        lines += [f"  {k} = {json.dumps(v)}" for k, v in self.child_extra.items()]
        return "\n".join(lines) + "\n"


class Mobiked:
    def __init__(self, lab: Lab, ns: Namespace, name: str | None = None, *,
                 retransmit_timeout: float = 1.0, retransmit_tries: int = 4,
                 log_level: str = "debug", dataplane: str = "none", daemon_extra: str = ""):
        self.lab, self.ns = lab, ns
        self.name = name or f"mobiked-{ns.role}"
        self.dir = lab.dir / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "mobiked.sock"
        self.config_path = self.dir / "mobiked.toml"
        self.daemon_section = (
            "[daemon]\n"
            f"socket = {json.dumps(str(self.socket))}\n"
            'listen = ["0.0.0.0", "::"]\n'
            f"log_level = {json.dumps(log_level)}\n"
            f"retransmit_timeout = {retransmit_timeout}\n"
            f"retransmit_tries = {retransmit_tries}\n"
            f"dataplane = {json.dumps(dataplane)}\n" + daemon_extra)
        self.proc = None

    def write_config(self, conns: list[MConn]) -> None:
        text = self.daemon_section + "\n" + "\n".join(c.toml() for c in conns)
        self.config_path.write_text(text)

    def start(self, conns: list[MConn], timeout: float = 10) -> "Mobiked":
        self.write_config(conns)
        self.proc = self.ns.spawn([str(find_binary("mobiked")), "--config", str(self.config_path),
                                   "--foreground"], name=self.name)

        def ready() -> bool:
            if not self.proc.alive():  # e.g. a configuration it refused: say so at once
                raise Failure(f"{self.name} exited ({self.proc.popen.returncode}) before its control "
                              f"socket appeared:\n{tail(self.proc.log_text())}")
            return self.socket.exists() and self.ctl("stats", check=False).returncode == 0
        wait_until(ready, timeout, f"{self.name} control socket")
        return self

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = [str(find_binary("mobikectl")), "--socket", str(self.socket), *args]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError(f"mobikectl {' '.join(args)} failed ({r.returncode}): {r.stderr}{r.stdout}")
        return r

    def list_sas(self) -> list[dict]:
        return json.loads(self.ctl("list-sas", "--json").stdout)

    def sa(self, name: str) -> dict | None:
        for s in self.list_sas():
            if s["name"] == name:
                return s
        return None

    def established(self, name: str, timeout: float = 20) -> dict:
        def get():
            s = self.sa(name)
            if s and s["state"] == "ESTABLISHED" and any(c["state"] == "INSTALLED" for c in s["children"]):
                return s
            return None
        return wait_until(get, timeout, f"{self.name}: IKE SA {name} ESTABLISHED with a Child SA")

    def stats(self) -> dict:
        return json.loads(self.ctl("stats", "--json").stdout)

    def log_text(self) -> str:
        return self.proc.log_text() if self.proc else ""

    def stop(self, timeout: float = 5):
        return self.proc.stop(timeout) if self.proc else None
