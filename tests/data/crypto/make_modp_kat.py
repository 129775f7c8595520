# Regenerates modp-kat.txt (usage: make_modp_kat.py OUT.txt): an independent MODP
# known-answer vector. The RFC 3526 primes are rebuilt
# from their defining formula (digits of pi via Machin), not copied from OpenSSL.
import sys, hashlib

def pi_fixed(bits):
    # floor(pi * 2^bits) using Machin's formula with guard bits
    g = bits + 64
    one = 1 << g
    def arctan_inv(x):
        s = 0; t = one // x; n = 1; x2 = x * x; sign = 1
        while t:
            s += sign * (t // n); t //= x2; n += 2; sign = -sign
        return s
    return (16 * arctan_inv(5) - 4 * arctan_inv(239)) >> 64

p2048 = 2**2048 - 2**1984 - 1 + 2**64 * (pi_fixed(1918) + 124476)
p3072 = 2**3072 - 2**3008 - 1 + 2**64 * (pi_fixed(2942) + 1690314)
# sanity: RFC 3526 text starts both primes with FFFFFFFF FFFFFFFF C90FDAA2 2168C234
for p in (p2048, p3072):
    assert hex(p)[2:].upper().startswith('FFFFFFFFFFFFFFFFC90FDAA22168C234'), hex(p)[:40]
    assert pow(2, (p - 1) // 2, p) == 1  # 2 generates the prime-order subgroup

out = []
for name, p, n in (('modp2048', p2048, 256), ('modp3072', p3072, 384)):
    # Exponents searched so that pub_i and the shared secret each start with a zero
    # octet: the vector then also checks the fixed-length (padded) encodings.
    c = 0
    while True:
        xi = int.from_bytes(hashlib.sha512(name.encode() + b' initiator %d' % c).digest()[:32], 'big')
        gi = pow(2, xi, p)
        if gi < 1 << (8 * n - 8): break
        c += 1
    c = 0
    while True:
        xr = int.from_bytes(hashlib.sha512(name.encode() + b' responder %d' % c).digest()[:32], 'big')
        gr = pow(2, xr, p); s = pow(gr, xi, p)
        if s < 1 << (8 * n - 8) and gr >= 1 << (8 * n - 8): break
        c += 1
    assert s == pow(gi, xr, p)
    out += [f'{name}.prime = {p.to_bytes(n, "big").hex()}',
            f'{name}.priv_i = {xi.to_bytes(32, "big").hex()}',
            f'{name}.priv_r = {xr.to_bytes(32, "big").hex()}',
            f'{name}.pub_i = {gi.to_bytes(n, "big").hex()}',
            f'{name}.pub_r = {gr.to_bytes(n, "big").hex()}',
            f'{name}.shared = {s.to_bytes(n, "big").hex()}']
hdr = """# MODP known-answer vectors computed independently with Python integers: the RFC 3526
# primes rebuilt from their formula p = 2^n - 2^(n-64) - 1 + 2^64 * ([2^(n-130) pi] + k),
# fixed private exponents, g = 2; pub_i and shared start with a zero octet. Format: name = hex
"""
open(sys.argv[1], 'w').write(hdr + '\n'.join(out) + '\n')
