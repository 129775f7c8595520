"""A throwaway X.509 PKI for the certificate tests, made with the openssl command line
in a directory the test owns (its Lab's): nothing is checked in, everything is new per
run.

    pki = Pki(lab.dir / "pki")                             # a root CA (ECDSA P-256)
    sub = pki.intermediate("sub", "C=CH, O=Mobike Test, CN=Mobike Test Sub CA")
    gw = pki.issue("gw", "C=CH, O=Mobike Test, CN=gw.example.test",
                   key_type="rsa3072", san=["DNS:gw.example.test", "IP:198.51.100.10"])
    cl = pki.issue("client", "C=CH, O=Mobike Test, CN=client", san=["email:client@example.test"],
                   issuer=sub)
    old = pki.issue("old", "C=CH, O=Mobike Test, CN=old", not_before=now - 10 * DAY,
                    not_after=now - DAY)        # expired
    crl = pki.crl(revoked=[cl], issuer=sub)   # sub's CRL, revoking cl
    verify_chain(cl, crls=[crl])              # (False, "... certificate revoked")

Key types (KEY_TYPES): "ecdsa256" (P-256), "ecdsa384" (P-384), "rsa3072", "ed25519".
Certificates are signed with SHA-256 (SHA-384 by an ecdsa384 CA; Ed25519 signs without
a separate digest). Files are PEM; private keys are PKCS#8 ("BEGIN PRIVATE KEY"), written
with mode 0600 from the start. Subjects are given as strongSwan prints them, "C=CH,
O=Mobike Test, CN=gw.example.test", and encoded in that order (UTF8String values;
countryName PrintableString). Validity: not_before/not_after (aware or naive-UTC
datetimes); by default from an hour ago (clock skew between namespaces is nil, but a peer
may check with a margin) for `days` days.

Each CA keeps an `openssl ca` database (index.txt, serial, crlnumber) in a directory of
its own, so revocations accumulate per CA and crl() writes a v2 CRL (with a CRL number
and the authority key identifier, which charon needs to find a CRL) of everything
revoked so far. Certificates carry subject and authority key identifiers (SHA-1 of the
public key) and basicConstraints / keyUsage as a CA or an end entity; no CRL
distribution points (a daemon gets the CRLs as files).

Only the Python standard library and the openssl binary (OpenSSL 3) are needed. Run as a
script, the module makes a PKI of every key type in a temporary directory and checks it
with `openssl verify` (self_check()).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

sys.dont_write_bytecode = True

KEY_TYPES = ("ecdsa256", "ecdsa384", "rsa3072", "ed25519")
DAY = _dt.timedelta(days=1)
ROOT_SUBJECT = "C=CH, O=Mobike Test, CN=Mobike Test Root CA"

_GENPKEY = {
    "ecdsa256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-pkeyopt", "ec_param_enc:named_curve"],
    "ecdsa384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384",
                 "-pkeyopt", "ec_param_enc:named_curve"],
    "rsa3072": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
    "ed25519": ["-algorithm", "ED25519"],
}


class PkiError(RuntimeError):
    """An openssl command failed (its command line and output are in the message)."""


def _openssl(*args: str, input: bytes | None = None, cwd: Path | None = None) -> bytes:
    exe = shutil.which("openssl")
    if exe is None:
        raise PkiError("the openssl command is not installed")
    r = subprocess.run([exe, *args], input=input, capture_output=True, cwd=cwd, timeout=60)
    if r.returncode != 0:
        raise PkiError(f"openssl {' '.join(args)} failed ({r.returncode}):\n"
                       f"{r.stderr.decode(errors='replace')}{r.stdout.decode(errors='replace')}")
    return r.stdout


def _write_private(path: Path, data: bytes) -> None:
    """Writes a private key readable by its owner only (0600 from creation on)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)  # whatever the umask was


def generate_key(path: Path, key_type: str) -> Path:
    """A new private key of key_type (KEY_TYPES), PEM PKCS#8, mode 0600."""
    if key_type not in _GENPKEY:
        raise ValueError(f"unknown key type {key_type!r} (one of {', '.join(KEY_TYPES)})")
    _write_private(path, _openssl("genpkey", *_GENPKEY[key_type]))
    return path


# --------------------------------------------------------------------------- names


def parse_dn(dn: str) -> list[tuple[str, str]]:
    """"C=CH, O=Mobike Test, CN=x" -> [("C", "CH"), ("O", "Mobike Test"), ("CN", "x")].
    Separators are commas (a value may contain a comma escaped as "\\,")."""
    parts = [p.strip() for p in re.split(r"(?<!\\),", dn) if p.strip()]
    out = []
    for p in parts:
        if "=" not in p:
            raise ValueError(f"not a DN component: {p!r} in {dn!r}")
        k, v = p.split("=", 1)
        out.append((k.strip(), v.strip().replace("\\,", ",")))
    if not out:
        raise ValueError(f"empty DN {dn!r}")
    return out


def _subj_arg(dn: str) -> str:
    """The DN as openssl's -subj wants it: /C=CH/O=Mobike Test/CN=x (escaping / and +)."""
    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("/", "\\/").replace("+", "\\+")
    return "".join(f"/{esc(k)}={esc(v)}" for k, v in parse_dn(dn))


def _asn1_time(t: _dt.datetime) -> str:
    if t.tzinfo is not None:
        t = t.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return t.strftime("%Y%m%d%H%M%SZ")


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None, microsecond=0)


# --------------------------------------------------------------------------- DER


def _der_read(data: bytes, pos: int) -> tuple[int, int, int, int]:
    """(tag, start of contents, end of contents, end of the element) at pos."""
    tag = data[pos]
    n = data[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(data[pos:pos + k], "big")
        pos += k
    return tag, pos, pos + n, pos + n


def subject_der(cert_pem: Path) -> bytes:
    """The subject Name of a certificate, DER-encoded as it travels in an ID_DER_ASN1_DN
    payload (a daemon may print that ID as hex)."""
    der = _openssl("x509", "-in", str(cert_pem), "-outform", "DER")
    _, c, _, _ = _der_read(der, 0)          # Certificate
    _, c, _, _ = _der_read(der, c)          # tbsCertificate
    pos = c
    tag, _, _, end = _der_read(der, pos)
    if tag == 0xA0:                         # [0] version
        pos = end
    for _ in range(4):                      # serial, signature, issuer, validity
        pos = _der_read(der, pos)[3]
    tag, _, _, end = _der_read(der, pos)
    if tag != 0x30:
        raise PkiError(f"{cert_pem}: unexpected DER at the subject (tag {tag:#x})")
    return der[pos:end]


def dn_equal(a: str, b: str) -> bool:
    """Two DN strings name the same components in the same order (spaces around the
    separators and the case of the attribute names do not matter)."""
    try:
        pa, pb = parse_dn(a), parse_dn(b)
    except ValueError:
        return False
    return [(k.upper(), v) for k, v in pa] == [(k.upper(), v) for k, v in pb]


# --------------------------------------------------------------------------- PKI


@dataclass
class Cert:
    """One certificate and its key. chain: this certificate, then the intermediates up
    to (not including) the root, the order an IKE peer sends them in CERT payloads."""
    name: str
    cert: Path
    key: Path
    subject: str
    key_type: str
    serial: str                  # hex, as openssl prints it
    san: tuple[str, ...] = ()
    issuer: "Cert | None" = None  # None: self-signed
    is_ca: bool = False
    ca_dir: Path | None = None   # a CA's openssl ca database

    @property
    def chain(self) -> list[Path]:
        out, c = [], self
        while c is not None and c.issuer is not None:
            out.append(c.cert)
            c = c.issuer
        return out or [self.cert]

    @property
    def intermediates(self) -> list[Path]:
        return self.chain[1:]

    @property
    def root(self) -> "Cert":
        c = self
        while c.issuer is not None:
            c = c.issuer
        return c

    def subject_der(self) -> bytes:
        return subject_der(self.cert)


_CA_CONF = """\
[ ca ]
default_ca = ca_default

[ ca_default ]
dir              = {dir}
database         = $dir/index.txt
new_certs_dir    = $dir/newcerts
serial           = $dir/serial
crlnumber        = $dir/crlnumber
default_md       = {md}
default_days     = 30
default_crl_days = 30
policy           = policy_any
unique_subject   = no
preserve         = yes
email_in_dn      = no
copy_extensions  = none
name_opt         = ca_default
cert_opt         = ca_default
crl_extensions   = crl_ext

# The authority key identifier matters: charon (5.9) finds a CRL it holds for an issuer
# only by it (the SHA-1 of the issuer's public key), never by the issuer's name.
[ crl_ext ]
authorityKeyIdentifier = keyid:always

[ policy_any ]
countryName            = optional
stateOrProvinceName    = optional
localityName           = optional
organizationName       = optional
organizationalUnitName = optional
commonName             = optional
emailAddress           = optional
serialNumber           = optional
domainComponent        = optional
userId                 = optional
"""


def _md_for(key_type: str) -> str:
    return {"ecdsa384": "sha384", "ed25519": "default"}.get(key_type, "sha256")


class Pki:
    """A root CA in `directory` (created), and whatever it issues. ca_key_type: the
    root's key (KEY_TYPES)."""

    def __init__(self, directory: Path | str, *, ca_key_type: str = "ecdsa256",
                 ca_subject: str = ROOT_SUBJECT, days: int = 3650):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.certs: dict[str, Cert] = {}
        self.root = self._make_ca("ca", ca_subject, ca_key_type, None, days)

    # --- helpers
    def _ca_database(self, name: str, key_type: str) -> Path:
        d = self.dir / f"{name}.db"
        (d / "newcerts").mkdir(parents=True, exist_ok=True)
        (d / "index.txt").write_text("")
        (d / "index.txt.attr").write_text("unique_subject = no\n")
        # Serials unique across the CAs of one PKI: CA n issues from n * 0x1000.
        (d / "serial").write_text(f"{(len(self.certs) + 1) * 0x1000:04X}\n")
        (d / "crlnumber").write_text("01\n")
        (d / "openssl.cnf").write_text(_CA_CONF.format(dir=d, md=_md_for(key_type)))
        return d

    @staticmethod
    def _ext_text(*, ca: bool, pathlen: int | None, san: Sequence[str], eku: Sequence[str],
                  self_signed: bool) -> str:
        lines = ["[ ext ]"]
        if ca:
            bc = "critical,CA:TRUE" + (f",pathlen:{pathlen}" if pathlen is not None else "")
            lines += [f"basicConstraints = {bc}", "keyUsage = critical,keyCertSign,cRLSign"]
        else:
            lines += ["basicConstraints = CA:FALSE", "keyUsage = critical,digitalSignature"]
        lines.append("subjectKeyIdentifier = hash")
        if not self_signed:
            lines.append("authorityKeyIdentifier = keyid:always")
        if san:
            lines.append("subjectAltName = " + ",".join(s.strip() for s in san))
        if eku:
            lines.append("extendedKeyUsage = " + ",".join(eku))
        return "\n".join(lines) + "\n"

    def _sign(self, name: str, subject: str, key_type: str, issuer: Cert | None, *,
              ca: bool, pathlen: int | None = None, san: Sequence[str] = (), eku: Sequence[str] = (),
              not_before: _dt.datetime | None = None, not_after: _dt.datetime | None = None,
              days: int = 30, ca_dir: Path | None = None) -> Cert:
        if name in self.certs:
            raise ValueError(f"a certificate named {name!r} exists already")
        key = generate_key(self.dir / f"{name}.key", key_type)
        csr = self.dir / f"{name}.csr"
        _openssl("req", "-new", "-utf8", "-key", str(key), "-subj", _subj_arg(subject),
                 "-out", str(csr))
        ext = self.dir / f"{name}.ext"
        ext.write_text(self._ext_text(ca=ca, pathlen=pathlen, san=san, eku=eku,
                                      self_signed=issuer is None))
        start = not_before or (utcnow() - _dt.timedelta(hours=1))
        end = not_after or (start + days * DAY)
        signer_db = ca_dir if issuer is None else issuer.ca_dir
        signer_key = key if issuer is None else issuer.key
        out = self.dir / f"{name}.crt"
        args = ["ca", "-batch", "-config", str(signer_db / "openssl.cnf"), "-notext", "-utf8",
                "-in", str(csr), "-out", str(out), "-keyfile", str(signer_key),
                "-extfile", str(ext), "-extensions", "ext",
                "-startdate", _asn1_time(start), "-enddate", _asn1_time(end)]
        if issuer is None:
            args += ["-selfsign"]
        else:
            args += ["-cert", str(issuer.cert)]
        _openssl(*args)
        # openssl ca writes the PEM after nothing else with -notext; keep just the PEM.
        serial = _openssl("x509", "-in", str(out), "-noout", "-serial").decode().strip().split("=", 1)[1]
        c = Cert(name=name, cert=out, key=key, subject=subject, key_type=key_type, serial=serial,
                 san=tuple(san), issuer=issuer, is_ca=ca, ca_dir=ca_dir)
        self.certs[name] = c
        return c

    def _make_ca(self, name: str, subject: str, key_type: str, issuer: Cert | None, days: int,
                 pathlen: int | None = None, **kw) -> Cert:
        db = self._ca_database(name, key_type)
        return self._sign(name, subject, key_type, issuer, ca=True, pathlen=pathlen, days=days,
                          ca_dir=db, **kw)

    # --- what a test uses
    def intermediate(self, name: str = "sub",
                     subject: str = "C=CH, O=Mobike Test, CN=Mobike Test Intermediate CA", *,
                     key_type: str = "ecdsa256", issuer: Cert | None = None,
                     days: int = 365) -> Cert:
        """An intermediate CA (pathlen 0) under issuer (default: the root)."""
        return self._make_ca(name, subject, key_type, issuer or self.root, days, pathlen=0)

    def issue(self, name: str, subject: str, *, key_type: str = "ecdsa256",
              san: Iterable[str] = (), issuer: Cert | None = None, days: int = 30,
              not_before: _dt.datetime | None = None, not_after: _dt.datetime | None = None,
              eku: Iterable[str] = ()) -> Cert:
        """An end-entity certificate (digitalSignature, CA:FALSE) for subject, with
        subjectAltNames san ("DNS:gw.example.test", "email:client@example.test",
        "IP:198.51.100.10"), signed by issuer (default: the root). not_before/not_after
        set the validity window (e.g. both in the past: an expired certificate); eku the
        extendedKeyUsage (e.g. "serverAuth", "1.3.6.1.5.5.7.3.17"), none by default."""
        return self._sign(name, subject, key_type, issuer or self.root, ca=False,
                          san=list(san), eku=list(eku), not_before=not_before,
                          not_after=not_after, days=days)

    def crl(self, revoked: Iterable[Cert] = (), *, issuer: Cert | None = None,
            name: str | None = None, days: int = 30, reason: str = "keyCompromise") -> Path:
        """A PEM CRL by issuer (default: the root) listing `revoked` (certificates the
        issuer signed) and whatever it revoked before. Returns its path."""
        issuer = issuer or self.root
        conf = str(issuer.ca_dir / "openssl.cnf")
        for c in revoked:
            if c.issuer is not issuer:
                raise ValueError(f"{c.name} was not issued by {issuer.name}")
            _openssl("ca", "-batch", "-config", conf, "-keyfile", str(issuer.key),
                     "-cert", str(issuer.cert), "-revoke", str(c.cert), "-crl_reason", reason)
        out = self.dir / f"{name or issuer.name}.crl"
        _openssl("ca", "-batch", "-config", conf, "-keyfile", str(issuer.key),
                 "-cert", str(issuer.cert), "-gencrl", "-crldays", str(days), "-out", str(out))
        return out


# --------------------------------------------------------------------------- checks


def verify_chain(cert: Cert, *, crls: Sequence[Path] = (), trusted: Sequence[Path] | None = None,
                 at: _dt.datetime | None = None) -> tuple[bool, str]:
    """`openssl verify` of cert with its intermediates as untrusted certificates, the
    root (or `trusted`) as anchors and, given crls, a CRL check of the leaf. Returns
    (ok, openssl's output)."""
    exe = shutil.which("openssl")
    if exe is None:
        raise PkiError("the openssl command is not installed")
    with tempfile.TemporaryDirectory(prefix="pki-verify-") as tmp:
        anchors = Path(tmp) / "anchors.pem"
        anchors.write_text("".join(Path(p).read_text() for p in (trusted or [cert.root.cert])))
        argv = [exe, "verify", "-CAfile", str(anchors)]
        if cert.intermediates:
            chain = Path(tmp) / "untrusted.pem"
            chain.write_text("".join(Path(p).read_text() for p in cert.intermediates))
            argv += ["-untrusted", str(chain)]
        for crl in crls:
            argv += ["-CRLfile", str(crl)]
        if crls:
            argv += ["-crl_check"]
        if at is not None:
            argv += ["-attime", str(int(at.replace(tzinfo=at.tzinfo or _dt.timezone.utc).timestamp()))]
        argv.append(str(cert.cert))
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return r.returncode == 0, (r.stdout + r.stderr).strip()


def describe(cert: Cert) -> str:
    """openssl's text of the certificate, without the key and signature dumps."""
    return _openssl("x509", "-in", str(cert.cert), "-noout", "-subject", "-issuer", "-dates",
                    "-ext", "subjectAltName,basicConstraints,keyUsage", "-nameopt", "RFC2253").decode()


def self_check(directory: Path | None = None, verbose: bool = True) -> None:
    """Makes a PKI of every key type (root, intermediate, end entities, an expired and a
    revoked certificate, a CRL) and checks it with openssl verify; raises PkiError when
    something is off."""
    import time
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pki-selfcheck-") as tmp:
        base = Path(directory or tmp)
        problems: list[str] = []

        def expect(ok_wanted: bool, cert: Cert, what: str, reason: str = "", **kw) -> None:
            """reason: a regex openssl's refusal must match."""
            ok, out = verify_chain(cert, **kw)
            errors = [line for line in out.splitlines() if re.match(r"error \d+ at", line)]
            if ok != ok_wanted:
                problems.append(f"{what}: openssl verify says {'ok' if ok else 'no'}: {out}")
            elif not ok and not re.search(reason, "\n".join(errors)):
                problems.append(f"{what}: refused, but not for /{reason}/: {out}")
            elif verbose:
                print(f"  {what}: {'verified' if ok else 'refused: ' + '; '.join(errors)}")

        for kt in KEY_TYPES:
            pki = Pki(base / kt, ca_key_type=kt)
            ee = pki.issue("gw", "C=CH, O=Mobike Test, CN=gw.example.test", key_type=kt,
                           san=["DNS:gw.example.test", "IP:198.51.100.10"])
            mode = ee.key.stat().st_mode & 0o777
            if mode != 0o600:
                problems.append(f"{kt}: key mode {mode:o}")
            if b"BEGIN PRIVATE KEY" not in ee.key.read_bytes():
                problems.append(f"{kt}: key not PKCS#8")
            expect(True, ee, f"{kt}: root -> end entity")
            sub = pki.intermediate(key_type=kt)
            cl = pki.issue("client", "C=CH, O=Mobike Test, CN=client", key_type=kt,
                           san=["email:client@example.test"], issuer=sub)
            expect(True, cl, f"{kt}: root -> intermediate -> end entity")
            expect(False, cl, f"{kt}: the intermediate as the only anchor", "unable to get issuer",
                   trusted=[sub.cert])
            old = pki.issue("old", "C=CH, O=Mobike Test, CN=old", key_type=kt,
                            not_before=utcnow() - 10 * DAY, not_after=utcnow() - DAY)
            expect(False, old, f"{kt}: expired", "certificate has expired")
            crl = pki.crl([ee])
            if "Authority Key Identifier" not in _openssl("crl", "-in", str(crl), "-noout", "-text").decode():
                problems.append(f"{kt}: the CRL has no authority key identifier")
            expect(False, ee, f"{kt}: revoked by the root's CRL", "certificate revoked", crls=[crl])
            crl2 = pki.crl(issuer=sub)
            expect(True, cl, f"{kt}: not revoked by the intermediate's CRL", crls=[crl2])
            der = ee.subject_der()
            if not der.startswith(b"\x30") or b"gw.example.test" not in der:
                problems.append(f"{kt}: subject DER {der.hex()}")
        other = Pki(base / "other", ca_subject="C=CH, O=Other, CN=Other Root CA")
        stranger = other.issue("stranger", "C=CH, O=Mobike Test, CN=client")
        ok, _ = verify_chain(stranger, trusted=[Pki(base / "again").root.cert])
        if ok:
            problems.append("a certificate of another CA verified")
        elif verbose:
            print("  another CA's certificate: refused as expected")
        if problems:
            raise PkiError("PKI self-check failed:\n  " + "\n  ".join(problems))
    if verbose:
        print(f"PKI self-check passed ({time.monotonic() - t0:.1f}s)")


if __name__ == "__main__":
    try:
        self_check(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    except PkiError as e:
        print(e, file=sys.stderr)
        sys.exit(1)
