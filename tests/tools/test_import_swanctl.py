#!/usr/bin/env python3
"""mobikectl import-swanctl on whole swanctl.conf files, each result checked by mobiked.

  test_import_swanctl.py MOBIKECTL MOBIKED DATA_DIR

DATA_DIR (tests/data/swanctl) holds swanctl.conf files of two kinds: what the netns
interop tests write for charon (netns.swanctl_conf: interop_*.conf) and the documented
strongSwan shapes (road warrior client and gateway, site-to-site PSK, EAP-MSCHAPv2
gateway), plus one full of settings mobiked cannot carry over. Each is copied into a
scratch swanctl directory with a PKI made here by openssl (x509/, x509ca/, private/),
converted, its output's keys checked, and the output loaded by `mobiked --check-config`.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

MOBIKECTL, MOBIKED, DATA = sys.argv[1], sys.argv[2], Path(sys.argv[3])
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(swan: Path):
    """A CA, and certificates with keys for the gateway and for carol, as swanctl keeps them."""
    for d in ("x509", "x509ca", "private"):
        (swan / d).mkdir(parents=True, exist_ok=True)
    tmp = swan / "tmp"
    tmp.mkdir()
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ca.key", cwd=tmp)
    openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/C=CH/O=Example/CN=Example CA", "-days", "30",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", str(swan / "x509ca" / "caCert.pem"), cwd=tmp)
    for name, cn, san, files in (
            ("gw", "gw.example.org", "DNS:gw.example.org,DNS:gw.mobike.test", ("gwCert.pem", "gw.crt")),
            ("carol", "carol@example.org", "email:carol@example.org", ("carolCert.pem",))):
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{name}.key", cwd=tmp)
        openssl("req", "-new", "-key", f"{name}.key", "-subj", f"/C=CH/O=Example/CN={cn}", "-out", f"{name}.csr", cwd=tmp)
        (tmp / f"{name}.ext").write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", str(swan / "x509ca" / "caCert.pem"), "-CAkey", "ca.key",
                "-CAserial", "ca.srl", "-CAcreateserial", "-days", "30", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=tmp)
        for f in files:
            shutil.copy(tmp / f"{name}.crt", swan / "x509" / f)
        key = swan / "private" / f"{name}Key.pem"
        shutil.copy(tmp / f"{name}.key", key)
        os.chmod(key, 0o600)
    shutil.rmtree(tmp)


def convert(scratch: Path, conf: str):
    """Copies DATA/conf (and DATA/conf.d) into a fresh swanctl dir, converts it: (rc, stderr, toml, out path)."""
    swan = scratch / conf.removesuffix(".conf")
    swan.mkdir()
    make_pki(swan)
    shutil.copy(DATA / conf, swan / "swanctl.conf")
    if (DATA / "conf.d").is_dir():
        shutil.copytree(DATA / "conf.d", swan / "conf.d")
    out_dir = swan / "mobiked"
    out_dir.mkdir()
    out = out_dir / "mobiked.toml"
    p = subprocess.run([MOBIKECTL, "import-swanctl", str(swan / "swanctl.conf"), "-o", str(out)],
                       capture_output=True, text=True, timeout=60)
    print(f"--- {conf}: exit {p.returncode}\n{p.stderr}", end="")
    toml = tomllib.loads(out.read_text()) if out.exists() else {}
    return p.returncode, p.stderr, toml, out


def loads_in_mobiked(out: Path, conf: str):
    p = subprocess.run([MOBIKED, "--check-config", str(out)], capture_output=True, text=True, timeout=60)
    check(p.returncode == 0 and p.stdout.strip() == "OK",
          f"{conf}: mobiked --check-config exited {p.returncode}: {p.stdout}{p.stderr}\n{out.read_text()}")


def conn(toml, name):
    return next((c for c in toml.get("connection", []) if c.get("name") == name), None)


def main():
    with tempfile.TemporaryDirectory(prefix="import-swanctl-") as d:
        scratch = Path(d)

        # --- the interop tests' swanctl.conf (netns.swanctl_conf) ---------------------
        rc, err, t, out = convert(scratch, "interop_psk.conf")
        check(rc == 0, f"interop_psk: exit {rc}, expected 0")
        c = conn(t, "home") or {}
        check(c.get("auth") == "psk" and c.get("psk_file") == "./home.psk", f"interop_psk: auth/psk_file {c}")
        check(c.get("local_id") == "swan@mobike.test" and c.get("remote_id") == "mobiked@mobike.test", f"interop_psk: ids {c}")
        check(c.get("dpd_delay") == "10s" and c.get("start") == "initiate", f"interop_psk: dpd/start {c}")
        child = (c.get("child") or [{}])[0]
        check(child.get("local_ts") == ["10.1.0.1/32"] and child.get("remote_ts") == ["10.2.0.1/32"], f"interop_psk: ts {child}")
        psk = out.parent / "home.psk"
        check(psk.read_text() == "interop-psk-0123456789\n" and (psk.stat().st_mode & 0o077) == 0,
              "interop_psk: home.psk holds the PSK, mode 0600")
        loads_in_mobiked(out, "interop_psk")

        rc, err, t, out = convert(scratch, "interop_trap.conf")
        check(rc == 0, f"interop_trap: exit {rc}, expected 0")
        c = conn(t, "trap") or {}
        check(c.get("start") == "trap", f"interop_trap: start {c}")
        check(c.get("ike_proposals") == "aes256gcm16-prfsha384-ecp384, aes128-sha256-modp2048", f"interop_trap: proposals {c}")
        check(c.get("dpd_delay") == "0s", f"interop_trap: no dpd_delay in swanctl.conf is no DPD: {c}")
        child = (c.get("child") or [{}])[0]
        check(child.get("rekey_bytes") == 1000000 and child.get("lifetime") == "2h", f"interop_trap: child {child}")
        check((out.parent / "trap.psk").read_text() == "0x747261702d70736b2d3132333435363738\n", "interop_trap: base64 PSK as hex")
        loads_in_mobiked(out, "interop_trap")

        rc, err, t, out = convert(scratch, "interop_eap_gw.conf")
        check(rc == 0, f"interop_eap_gw: exit {rc}, expected 0")
        c = conn(t, "eap") or {}
        check(c.get("local_auth") == "pubkey" and c.get("remote_auth") == "eap-mschapv2", f"interop_eap_gw: auth {c}")
        check(c.get("eap_id") == "%any" and c.get("eap_secrets") == "./eap.secrets" and c.get("pools") == ["rw"],
              f"interop_eap_gw: eap {c}")
        check(c.get("local_key", "").endswith("/private/gwKey.pem"), f"interop_eap_gw: the key matching gw.crt: {c}")
        secrets = (out.parent / "eap.secrets").read_text()
        check('"carol" : EAP "carol-password"' in secrets and '"dave" : EAP "dave \\"quoted\\" pw"' in secrets,
              f"interop_eap_gw: eap.secrets {secrets!r}")
        check(t.get("pool", [{}])[0] == {"name": "rw", "addrs": "10.3.0.0/24", "dns": ["10.3.0.53"]}, f"interop_eap_gw: pool {t.get('pool')}")
        loads_in_mobiked(out, "interop_eap_gw")

        # --- strongSwan's documented shapes -------------------------------------------------
        rc, err, t, out = convert(scratch, "roadwarrior_client.conf")
        check(rc == 0, f"roadwarrior_client: exit {rc}, expected 0")
        c = conn(t, "home") or {}
        check(c.get("vips") == ["0.0.0.0"] and c.get("auth") == "pubkey", f"roadwarrior_client: {c}")
        check(c.get("local_id") == "carol@example.org" and c.get("remote_id") == "gw.example.org", f"roadwarrior_client: ids {c}")
        check(c.get("local_certs", [""])[0].endswith("/x509/carolCert.pem") and c.get("local_key", "").endswith("/private/carolKey.pem"),
              f"roadwarrior_client: certs {c}")
        check(c.get("cacerts", [""])[0].endswith("/x509ca/caCert.pem"), f"roadwarrior_client: every CA of x509ca/ {c}")
        check(c.get("start") == "initiate" and c.get("ike_proposals") == "aes256gcm16-prfsha384-ecp384", f"roadwarrior_client: {c}")
        child = (c.get("child") or [{}])[0]
        check(child.get("remote_ts") == ["0.0.0.0/0"] and child.get("esp_proposals") == "aes256gcm16-ecp384", f"roadwarrior_client: {child}")
        loads_in_mobiked(out, "roadwarrior_client")

        rc, err, t, out = convert(scratch, "roadwarrior_gw.conf")
        check(rc == 0, f"roadwarrior_gw: exit {rc}, expected 0")
        c = conn(t, "rw") or {}
        check(c.get("pools") == ["rw_pool"] and "remote_addrs" not in c and c.get("fragmentation") is True, f"roadwarrior_gw: {c}")
        check(c.get("ike_proposals") == "aes256gcm16-prfsha384-ecp384, aes128-sha256-modp2048", f"roadwarrior_gw: {c}")
        child = (c.get("child") or [{}])[0]
        check(child.get("local_ts") == ["10.1.0.0/16"] and child.get("rekey_time") == "30m"
              and child.get("esp_proposals") == "aes256gcm16-ecp384, aes128-sha256", f"roadwarrior_gw: {child}")
        check(t.get("pool") == [{"name": "rw_pool", "addrs": "10.3.0.0/24", "dns": ["10.1.0.53", "10.1.0.54"]}],
              f"roadwarrior_gw: the pool from the included conf.d/pools.conf: {t.get('pool')}")
        loads_in_mobiked(out, "roadwarrior_gw")

        rc, err, t, out = convert(scratch, "site_to_site_psk.conf")
        check(rc == 0, f"site_to_site_psk: exit {rc}, expected 0")
        c = conn(t, "net-net") or {}
        check(c.get("start") == "trap" and c.get("lifetime") == "260m" and c.get("psk_file") == "./net-net.psk", f"site_to_site: {c}")
        child = (c.get("child") or [{}])[0]
        check(child.get("local_ts") == ["10.1.0.0/16"] and child.get("remote_ts") == ["10.2.0.0/16"]
              and child.get("esp_proposals") == "aes128gcm16-modp2048" and child.get("lifetime") == "90m", f"site_to_site: {child}")
        check((out.parent / "net-net.psk").read_text() == 's3cret with spaces and a "quote"\n', "site_to_site: the quoted PSK")
        loads_in_mobiked(out, "site_to_site_psk")

        rc, err, t, out = convert(scratch, "eap_mschapv2_gw.conf")
        check(rc == 0, f"eap_mschapv2_gw: exit {rc}, expected 0")
        c = conn(t, "eap") or {}
        check(c.get("remote_addrs") == ["%any"] and c.get("remote_auth") == "eap-mschapv2" and c.get("eap_id") == "%any"
              and c.get("pools") == ["eap_pool"], f"eap_mschapv2_gw: {c}")
        check(t.get("pool") == [{"name": "eap_pool", "addrs": "10.4.0.10-10.4.0.99"}], f"eap_mschapv2_gw: {t.get('pool')}")
        secrets = (out.parent / "eap.secrets").read_text()
        check(secrets == '"carol" : EAP "Ar3etTnp"\n"dave" : EAP "W7R0g3do"\n', f"eap_mschapv2_gw: {secrets!r}")
        loads_in_mobiked(out, "eap_mschapv2_gw")

        # --- what cannot be carried over ----------------------------------------------------
        rc, err, t, out = convert(scratch, "unsupported.conf")
        check(rc == 3, f"unsupported: exit {rc}, expected 3 (converted with omissions)")
        conf = str(scratch / "unsupported" / "swanctl.conf")
        for line in (
                f"{conf}:6: connections.legacy.proposals = aes192-sha1-modp1024, aes256-sha256-ecp521, aes128-sha256-modp2048: "
                "not carried over: 'aes192' in 'aes192-sha1-modp1024': mobiked does not support it",
                f"{conf}:7: connections.legacy.reauth_time = 8h: not carried over:",
                f"{conf}:17: connections.legacy.remote-2 = {{...}}: not carried over: a second authentication round",
                f"{conf}:22: connections.legacy.children.tun.local_ts = 10.1.0.0/24, 10.1.1.0/24[tcp/80]: not carried over:",
                f"{conf}:25: connections.legacy.children.tun.dpd_action = restart: not carried over:",
                f"{conf}:29: connections.legacy.children.transport.mode = transport: not carried over:",
                f"{conf}:33: connections.v1 = {{...}}: not carried over: left out: connection 'v1': IKEv1",
                f"{conf}:39: authorities.ca = {{...}}: not carried over:"):
            check(line in err, f"unsupported: stderr lacks {line!r}")
            check("# " + line in out.read_text(), f"unsupported: the TOML lacks the comment {line!r}")
        c = conn(t, "legacy") or {}
        check(c.get("ike_proposals") == "aes128-sha256-modp2048" and c.get("remote_addrs") == ["198.51.100.20"], f"unsupported: {c}")
        check([ch.get("name") for ch in c.get("child", [])] == ["tun"], f"unsupported: children {c.get('child')}")
        check(conn(t, "v1") is None, "unsupported: the IKEv1 connection is left out")
        loads_in_mobiked(out, "unsupported")

        # --- a parse error: exit 1, file and line ------------------------------------------
        bad = scratch / "bad.conf"
        bad.write_text("connections {\n  a {\n    local auth = psk\n  }\n}\n")
        p = subprocess.run([MOBIKECTL, "import-swanctl", str(bad)], capture_output=True, text=True, timeout=60)
        check(p.returncode == 1 and f"{bad}:3: " in p.stderr, f"bad.conf: exit {p.returncode}, stderr {p.stderr!r}")

    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
