# Regenerates strongswan-5.9.8-session.txt from a recorded strongSwan 5.9.8 session (run once by
# hand; tests read only the generated file). Needs python3-cryptography. Usage:
#   extract_strongswan_session.py OUT.txt CORPUS_DIR
# Every derived value is re-checked here with Python's own HMAC/AES before it is written.
import os, re, struct, sys, hmac, hashlib
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if len(sys.argv) != 3:
    sys.exit('usage: extract_strongswan_session.py OUT.txt CORPUS_DIR')
D = sys.argv[2] + '/'
LBL = re.compile(r'^\S+ \d+\[(\w+)\] (.*?) => (\d+) bytes @')
ROW = re.compile(r'^\S+ \d+\[\w+\]\s+(\d+): (.{48})')

def dumps(path):
    out = []  # (lineno, label, bytes)
    lines = open(path, errors='replace').read().split('\n')
    i = 0
    while i < len(lines):
        m = LBL.match(lines[i])
        if m:
            n = int(m.group(3)); buf = b''; j = i + 1
            while len(buf) < n and j < len(lines):
                r = ROW.match(lines[j])
                if not r: break
                buf += bytes.fromhex(r.group(2).replace(' ', ''))
                j += 1
            out.append((i + 1, m.group(1) + ':' + m.group(2).strip(), buf[:n]))
            i = j
        else:
            i += 1
    return out

ini = dumps(D + 'initiator-charon.log')
res = dumps(D + 'responder-charon.log')
def get(d, label):
    return [b for (_, l, b) in d if l == label]

# pcap
raw = open(D + 'exchanges.pcap', 'rb').read()
off = 24; pkts = []
while off < len(raw):
    ts, tu, incl, orig = struct.unpack('<IIII', raw[off:off+16]); off += 16
    frame = raw[off:off+incl]; off += incl
    ip = frame[14:]; ihl = (ip[0] & 15) * 4
    src = ip[12:16]; dst = ip[16:20]
    udp = ip[ihl:]; sport, dport = struct.unpack('>HH', udp[:4])
    pkts.append((sport, dport, src, dst, udp[8:]))

def ike(i):
    sp, dp, s, d, p = pkts[i - 1]
    if dp == 4500 or sp == 4500:
        assert p[:4] == b'\0\0\0\0', i
        p = p[4:]
    return p

def payloads(data, first):
    np = first; o = 0; res = []
    while np != 0 and o < len(data):
        nxt = data[o]; ln = struct.unpack('>H', data[o+2:o+4])[0]
        res.append((np, data[o+4:o+ln])); np = nxt; o += ln
    return res

init_req = ike(1); init_resp = ike(2)
spi_i = init_req[0:8]; spi_r = init_resp[8:16]
def find(msg, t):
    return [b for (n, b) in payloads(msg[28:], msg[16]) if n == t]
ni = find(init_req, 40)[0]; nr = find(init_resp, 40)[0]
kei = find(init_req, 34)[0][4:]; ker = find(init_resp, 34)[0][4:]

V = {}
V['ike1.spi_i'] = spi_i; V['ike1.spi_r'] = spi_r; V['ike1.ni'] = ni; V['ike1.nr'] = nr
V['ike1.ke_i'] = kei; V['ike1.ke_r'] = ker
names = ['shared Diffie Hellman secret', 'SKEYSEED', 'Sk_d secret', 'Sk_ai secret', 'Sk_ar secret',
         'Sk_ei secret', 'Sk_er secret', 'Sk_pi secret', 'Sk_pr secret']
short = ['g_ir', 'skeyseed', 'sk_d', 'sk_ai', 'sk_ar', 'sk_ei', 'sk_er', 'sk_pi', 'sk_pr']
for nm, sh in zip(names, short):
    a = get(ini, 'IKE:' + nm); b = get(res, 'IKE:' + nm)
    assert a == b and len(a) == 2, nm
    V['ike1.' + sh] = a[0]; V['ike2.' + sh] = a[1]

# independent check of ike1 derivation
def prf(k, d): return hmac.new(k, d, hashlib.sha256).digest()
def prfplus(k, s, n):
    out = b''; t = b''; c = 1
    while len(out) < n:
        t = prf(k, t + s + bytes([c])); out += t; c += 1
    return out[:n]
assert prf(ni + nr, V['ike1.g_ir']) == V['ike1.skeyseed']
km = prfplus(V['ike1.skeyseed'], ni + nr + spi_i + spi_r, 32*3 + 16*2 + 32*2)
assert km[:32] == V['ike1.sk_d'] and km[32:64] == V['ike1.sk_ai'] and km[96:112] == V['ike1.sk_ei']

def open_cbc(msg, ke, ka):
    # SK is the last payload; the header before it tells where it starts
    o = 28; np = msg[16]
    while np != 46:
        np2 = msg[o]; ln = struct.unpack('>H', msg[o+2:o+4])[0]; o += ln; np = np2
    inner_np = msg[o]; body = msg[o+4:]
    prefix = msg[:o+4]
    icv = body[-16:]
    assert hmac.new(ka, prefix + body[:-16], hashlib.sha256).digest()[:16] == icv
    iv = body[:16]; ct = body[16:-16]
    d = Cipher(algorithms.AES(ke), modes.CBC(iv)).decryptor()
    pt = d.update(ct) + d.finalize()
    pl = pt[-1]
    return inner_np, pt[:-1-pl], len(prefix)

# IKE_AUTH request
auth_req = ike(3)
np_, inner, plen = open_cbc(auth_req, V['ike1.sk_ei'], V['ike1.sk_ai'])
V['ike1.auth_request'] = auth_req
V['ike1.auth_request_inner'] = inner
plain_i = get(ini, 'ENC:plain')
assert plain_i[0] == inner, 'log plain differs'

# AUTH values (PSK)
oct_ = get(ini, 'IKE:octets = message + nonce + prf(Sk_px, IDx\')')
auth = get(ini, 'IKE:AUTH = prf(prf(secret, keypad), octets)')
secret = get(ini, 'IKE:secret')[0]
V['psk'] = secret
# initiator log: first octets = own (initiator) AUTH, second = verifying responder's
V['ike1.auth_octets_i'] = oct_[0]; V['ike1.auth_i'] = auth[0]
V['ike1.auth_octets_r'] = oct_[1]; V['ike1.auth_r'] = auth[1]
kp = prf(secret, b'Key Pad for IKEv2')
assert prf(kp, oct_[0]) == auth[0] and prf(kp, oct_[1]) == auth[1]

# NAT-D
chunks = get(ini, 'IKE:natd_chunk'); hashes = get(ini, 'IKE:natd_hash')
V['natd.input'] = chunks[0]; V['natd.sha1'] = hashes[0]
assert hashlib.sha1(chunks[0]).digest() == hashes[0]

# Child SA 1 (AES-GCM-16-128, no PFS): KEYMAT = prf+(SK_d, Ni | Nr), 2 x (16 + 4)
keymat = prfplus(V['ike1.sk_d'], ni + nr, 40)
def esp_open(pkt, key, salt):
    spi_seq = pkt[:8]; iv = pkt[8:16]; ct = pkt[16:]
    return AESGCM(key).decrypt(salt + iv, ct, spi_seq)
esp_i = pkts[5 - 1][4]; esp_r = pkts[6 - 1][4]
pi = esp_open(esp_i, keymat[0:16], keymat[16:20])
pr = esp_open(esp_r, keymat[20:36], keymat[36:40])
assert pi[0] == 0x45 and pr[0] == 0x45 and pi[-1] == 4
V['child1.esp_i_to_r'] = esp_i; V['child1.esp_r_to_i'] = esp_r
V['child1.keymat'] = keymat  # derived here, confirmed only by the ESP decryption above

# IKE rekey: CREATE_CHILD_SA pkt 18 / 19 on ike1
req = ike(18); resp = ike(19)
_, rq, _ = open_cbc(req, V['ike1.sk_ei'], V['ike1.sk_ai'])
_, rs, _ = open_cbc(resp, V['ike1.sk_er'], V['ike1.sk_ar'])
def inner_find(msg, pt, t):
    o = 28; np = msg[16]
    while np != 46:
        np2 = msg[o]; ln = struct.unpack('>H', msg[o+2:o+4])[0]; o += ln; np = np2
    return [b for (n, b) in payloads(pt, msg[o]) if n == t]
def sa_spi(sa):
    # first proposal: hdr(8 octets: last, rsv, len(2), num, proto, spisize, ntrans) then SPI
    spisize = sa[6]; return sa[8:8+spisize]
ni2 = inner_find(req, rq, 40)[0]; nr2 = inner_find(resp, rs, 40)[0]
spi_i2 = sa_spi(inner_find(req, rq, 33)[0]); spi_r2 = sa_spi(inner_find(resp, rs, 33)[0])
V['ike2.spi_i'] = spi_i2; V['ike2.spi_r'] = spi_r2; V['ike2.ni'] = ni2; V['ike2.nr'] = nr2
assert prf(V['ike1.sk_d'], V['ike2.g_ir'] + ni2 + nr2) == V['ike2.skeyseed']
km2 = prfplus(V["ike2.skeyseed"], ni2 + nr2 + spi_i2 + spi_r2, 192)
assert km2[:32] == V['ike2.sk_d'] and km2[160:192] == V['ike2.sk_pr']
V['ike1.rekey_request'] = req
assert req[16] == 46 and auth_req[16] == 46

auth_resp = ike(4)
np_, inner_r, _ = open_cbc(auth_resp, V['ike1.sk_er'], V['ike1.sk_ar'])
assert np_ == 36 and auth_resp[16] == 46
V['ike1.auth_response'] = auth_resp; V['ike1.auth_response_inner'] = inner_r
del_req = ike(36)
np_, inner_d, _ = open_cbc(del_req, V['ike2.sk_ei'], V['ike2.sk_ai'])
assert np_ == 42 and del_req[16] == 46
V['ike2.delete_request'] = del_req; V['ike2.delete_request_inner'] = inner_d
V['ike1.rekey_request'] = req

hdr = """# Extracted from a recorded strongSwan 5.9.8 session (keys logged)
# (initiator-charon.log, responder-charon.log, exchanges.pcap) with a throwaway script.
# IKE SA: AES_CBC_128 / HMAC_SHA2_256_128 / PRF_HMAC_SHA2_256 / CURVE_25519.
# Child SA 1: ESP AES_GCM_16_128, no PFS. ike2 is the IKE SA created by the IKE SA rekey.
# Keys (g_ir, skeyseed, sk_*, psk, auth_*, natd.*) are copied from the logs' hex dumps;
# SPIs, nonces, KE data and messages come from the capture (UDP payloads, non-ESP marker
# removed; ESP packets start at the SPI). child1.keymat is NOT in the logs: it is
# prf+(SK_d, Ni | Nr) computed by the script and confirmed by decrypting the two ESP
# packets with it; *_inner are the decrypted inner payload chains (padding removed).
# Format: name = hex
"""
with open(sys.argv[1], 'w') as f:
    f.write(hdr)
    for k, v in V.items():
        f.write(f'{k} = {v.hex()}\n')
print(len(V), 'values')
