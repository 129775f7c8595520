#!/bin/sh
# PID 1 of the user-mode-linux kernel that tests/uml/uml_run.py boots. The root is the
# host's, read-only through hostfs; the kernel command line names a writable scratch
# directory of the host's (mobike_scratch=), which holds the command to run (cmd.sh) and
# receives its exit status (rc). Nothing here writes outside tmpfs and that directory.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs shm /dev/shm
scratch=${mobike_scratch:?no mobike_scratch= on the kernel command line}
mount -t hostfs hostfs "$scratch" -o "$scratch" || { echo "uml init: cannot mount $scratch"; poweroff -f; }

# The modules of this kernel are not under the host's /lib/modules; a modprobe that
# looks where they are serves both this script and the kernel's own requests.
release=$(uname -r)
mkdir -p /tmp/uml-modules/lib/modules
ln -s "/usr/lib/uml/modules/$release" "/tmp/uml-modules/lib/modules/$release"
printf '#!/bin/sh\nexec /sbin/modprobe -d /tmp/uml-modules "$@"\n' > /tmp/modprobe
chmod +x /tmp/modprobe
echo /tmp/modprobe > /proc/sys/kernel/modprobe
# drbg first: ESP's IV generators need the default RNG (else "unable to initialize
# cryptographic operations"); jitterentropy may fail beside it, harmlessly.
for m in drbg esp4 esp6 xfrm_user xfrm_ipcomp xfrm4_tunnel xfrm6_tunnel ip_tunnel veth tun bridge \
         authenc gcm ccm chacha20poly1305 seqiv echainiv cbc sha256_generic sha512_generic \
         iptable_nat iptable_filter ip6table_nat ip6table_filter nf_nat xt_MASQUERADE \
         xt_conntrack xt_policy xt_mark nf_tables nft_masq nft_compat; do
  /tmp/modprobe "$m" 2>/dev/null || echo "uml init: module $m not loaded" >> "$scratch/modules.log"
done
ip link set lo up

# This kernel has no nftables NAT (CONFIG_NFT_NAT is off) but has iptables' own: the
# commands the tests call by name are the legacy ones here (first in PATH, cmd.sh).
mkdir -p /tmp/uml-bin
for t in iptables ip6tables iptables-save ip6tables-save iptables-restore ip6tables-restore; do
  [ -x "/usr/sbin/$t-legacy" ] && ln -s "/usr/sbin/$t-legacy" "/tmp/uml-bin/$t"
done

. "$scratch/cmd.sh" > "$scratch/console.log" 2>&1
echo $? > "$scratch/rc"
sync
poweroff -f
