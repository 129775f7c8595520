#!/usr/bin/env python3
"""The Debian package under a real systemd: systemd 252 (Debian's) booted as PID 1 of a
container made here, on a copy-on-write view of this machine's file system.

- The container: new PID, mount, network, UTS, IPC and cgroup namespaces; its root an
  overlay whose lower layer is this machine's root file system and whose upper layer is
  a tmpfs (nothing it writes reaches the machine); a fresh /proc, /run, /tmp and a /dev
  of the few device nodes a container gets (no udev, no kmsg); its own cgroup subtree,
  created for the test and removed after it. Units that would act on the machine rather
  than the container (udev, sysctl, binfmt, kernel modules, tmpfiles, ...) are masked.
- systemd boots (a target of journald alone), then `dpkg -i` installs the package built
  from this tree, as `apt install` would on a running system: the maintainer script
  enables mobiked.service (multi-user.target wants it) and starts it. The unit is the
  package's, unchanged, with the package's example configuration: systemd must see
  READY=1 (Type=notify) and report the unit active/running.
- The hardening holds in the running daemon: its bounding set is exactly NET_ADMIN,
  NET_RAW and NET_BIND_SERVICE, no_new_privs is set, a seccomp filter is on, / is read-only
  to it and /run/mobiked (RuntimeDirectory, mode 0700) is where its control socket is.
- The installed mobikectl reaches the daemon by its default socket path.
- Its log reaches the journal as structured entries (_TRANSPORT=journal, not stdout).
- `systemctl reload` (ExecReload = SIGHUP) reloads it: same main PID, a reload logged.
- With the watchdog shortened to 2 s by a drop-in (the only change to the unit, taken out
  again), the daemon keeps it fed: same PID, no restart after 6 s.
- Killed by SIGKILL, systemd restarts it (Restart=on-failure): one more restart, a new
  PID, active again and answering.
- `systemctl stop`: inactive (not failed), its socket gone.
- The maintainer scripts with systemd running: installing the package again (an upgrade)
  restarts the daemon, `dpkg -r` stops it and keeps /etc/mobiked/mobiked.toml, `dpkg
  --purge` removes that and the unit's enablement.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from netns import (Failure, Skip, build_dir, check, log, require_commands, require_netns,  # noqa: E402
                   run_test, wait_until)
from test_package import build_package  # noqa: E402

SYSTEMD = Path("/lib/systemd/systemd")
# Units whose work would be on the machine, not the container, or that have nothing to
# do there: the container's sysinit.target is reached with journald alone.
MASKED = [
    "systemd-udevd.service", "systemd-udev-trigger.service", "systemd-udev-settle.service",
    "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
    "systemd-sysctl.service", "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount",
    "systemd-modules-load.service", "kmod-static-nodes.service", "modprobe@.service",
    "systemd-tmpfiles-setup.service", "systemd-tmpfiles-setup-dev.service",
    "systemd-tmpfiles-setup-dev-early.service", "systemd-tmpfiles-clean.timer",
    "systemd-random-seed.service", "systemd-pstore.service", "systemd-timesyncd.service",
    "systemd-firstboot.service", "systemd-machine-id-commit.service", "systemd-sysusers.service",
    "systemd-repart.service", "systemd-pcrphase.service", "systemd-pcrphase-sysinit.service",
    "systemd-remount-fs.service", "systemd-journal-flush.service", "systemd-update-utmp.service",
    "systemd-journald-audit.socket", "systemd-initctl.socket", "dbus.socket",
    "systemd-ask-password-console.path", "systemd-ask-password-wall.path",
    "dev-hugepages.mount", "dev-mqueue.mount", "sys-fs-fuse-connections.mount",
    "sys-kernel-config.mount", "sys-kernel-debug.mount", "sys-kernel-tracing.mount",
    "tmp.mount",
]
TEST_TARGET = """[Unit]
Description=mobiked package test
Wants=systemd-journald.socket systemd-journald-dev-log.socket
AllowIsolate=yes
"""
CAPS = {"cap_net_admin": 12, "cap_net_raw": 13, "cap_net_bind_service": 10}


def boot_script(work: Path, deb: Path) -> str:
    """Runs as PID 1 of the new namespaces: builds the container's root and execs
    systemd there."""
    r = work / "root"
    masks = " ".join(MASKED)
    devices = "null zero full random urandom tty"
    return f"""set -eu
mount -t tmpfs -o mode=0755 sysroot '{work}'
mkdir '{work}/upper' '{work}/ovl' '{r}'
mount -t overlay overlay -o 'lowerdir=/,upperdir={work}/upper,workdir={work}/ovl' '{r}'
mount -t proc proc '{r}/proc'
mount --bind /sys '{r}/sys'
mount -t tmpfs -o mode=0755 run '{r}/run'
mount -t tmpfs -o mode=1777 tmp '{r}/tmp'
mount -t tmpfs -o mode=0755 dev '{r}/dev'
for d in {devices}; do touch '{r}'/dev/$d; mount --bind /dev/$d '{r}'/dev/$d; done
mkdir '{r}/dev/net' '{r}/dev/pts' '{r}/dev/shm'
touch '{r}/dev/net/tun'; mount --bind /dev/net/tun '{r}/dev/net/tun'
mount -t devpts -o newinstance,ptmxmode=0666 devpts '{r}/dev/pts'
ln -s pts/ptmx '{r}/dev/ptmx'
mount -t tmpfs -o mode=1777 shm '{r}/dev/shm'
for u in {masks}; do ln -sf /dev/null '{r}'/etc/systemd/system/$u; done
rm -f '{r}'/etc/systemd/system/*.wants/* 2>/dev/null || true
cat > '{r}/etc/systemd/system/mobiked-test.target' <<'EOF'
{TEST_TARGET}EOF
echo mobiked-test > '{r}/etc/hostname'
cp '{deb}' '{r}/root/mobiked.deb'
# A build container's "no services" policy (Docker images have one), not a Debian system's.
rm -f '{r}/usr/sbin/policy-rc.d'
cd '{r}'
mkdir -p oldroot
pivot_root . oldroot
exec chroot . /bin/sh -c 'umount -l /oldroot && rmdir /oldroot && exec env container=mobiked-test {SYSTEMD} --system --unit=mobiked-test.target --log-target=journal-or-kmsg'
"""


def cgroup_dirs() -> list[Path]:
    """This process's cgroup in every hierarchy (v2 and each v1 one, name=systemd
    among them): systemd in the container makes its tree in whichever it finds."""
    mounts = []  # (mount root, mount point, fstype, super options)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, post = line.split(" - ", 1)
        f, g = pre.split(), post.split()
        if g[0] in ("cgroup", "cgroup2"):
            mounts.append((f[3], Path(f[4]), g[0], set(g[2].split(","))))
    dirs = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for root, point, fstype, opts in mounts:
            if (fstype == "cgroup2") if not controllers else (fstype == "cgroup" and set(controllers.split(",")) <= opts):
                rel = os.path.relpath(path, root) if path.startswith(root) else None
                if rel is not None:
                    dirs.append(point / rel if rel != "." else point)
                break
    if not dirs:
        raise Skip("no cgroup hierarchy mounted (systemd in a container needs one)")
    return dirs


def make_cgroups(dirs: list[Path], name: str) -> list[Path]:
    made = []
    try:
        for d in dirs:
            sub = d / name
            sub.mkdir()
            made.append(sub)
            for knob in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset: empty until set
                if (d / knob).exists():
                    (sub / knob).write_text((d / knob).read_text())
    except OSError as e:
        for sub in made:
            remove_cgroup_tree(sub)
        raise Skip(f"cannot make the container's cgroups ({e})")
    return made


def remove_cgroup_tree(top: Path) -> None:
    if not top.exists():
        return
    dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
    for d in dirs + [top]:
        for _ in range(50):
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)  # its last processes are still exiting


class Container:
    def __init__(self, lab, deb: Path):
        self.lab = lab
        self.cgroups = make_cgroups(cgroup_dirs(), f"mobiked-test-{os.getpid()}")
        work = lab.dir / "container"
        work.mkdir()
        script = lab.dir / "boot.sh"
        script.write_text(boot_script(work, deb))
        # Into its own cgroup first, so that the container's cgroup namespace is rooted
        # there and everything systemd makes is under it.
        enter = " && ".join(f"echo $$ > '{d}/cgroup.procs'" for d in self.cgroups)
        wrapper = (f"{enter} && exec unshare --pid --fork --mount "
                   f"--propagation private --net --uts --ipc --cgroup sh '{script}'")
        self.proc = lab.spawn(None, ["sh", "-c", wrapper], name="container")
        self.pid1 = None

    def find_pid1(self) -> int | None:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            kids = children.read_text().split()
        except OSError:
            return None
        return int(kids[0]) if kids else None

    def run(self, *argv, check_rc=True, timeout=30) -> subprocess.CompletedProcess:
        r = subprocess.run(["nsenter", "-t", str(self.pid1), "-m", "-p", "-n", "-u", "-i", "-C", "-r", "-w",
                            *map(str, argv)], capture_output=True, text=True, timeout=timeout)
        if check_rc and r.returncode != 0:
            raise Failure(f"in the container: {' '.join(map(str, argv))}: {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    def booted(self) -> bool:
        if not self.proc.alive():
            raise Skip(f"systemd did not come up as a container's PID 1 here:\n{self.proc.log_text()[-3000:]}")
        if self.pid1 is None:
            self.pid1 = self.find_pid1()
            if self.pid1 is None:
                return False
        return self.run("systemctl", "is-system-running", check_rc=False).stdout.strip() not in ("", "offline",
                                                                                                   "initializing")

    def show(self, unit: str, *props: str) -> dict:
        out = self.run("systemctl", "show", unit, "-p", ",".join(props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, *args: str) -> str:
        return self.run("journalctl", "--no-pager", *args, check_rc=False).stdout

    def unit_entries(self) -> list[dict]:
        """mobiked.service's journal entries with all their fields."""
        return [json.loads(line) for line in self.journal("-u", "mobiked.service", "-o", "json").splitlines() if line]

    def close(self) -> None:
        if self.pid1 is not None:
            try:
                os.kill(self.pid1, 9)  # the namespace's PID 1: every process in it goes too
            except ProcessLookupError:
                pass
        if self.proc.alive():
            self.proc.wait(10)
        for d in self.cgroups:
            remove_cgroup_tree(d)


def caps_bounding(status: str) -> set[str]:
    m = re.search(r"^CapBnd:\s*([0-9a-f]+)$", status, re.M)
    check(m is not None, f"no CapBnd in /proc/PID/status:\n{status}")
    mask = int(m.group(1), 16)
    return {name for name, bit in CAPS.items() if mask & (1 << bit)} | (
        {f"bit{b}" for b in range(64) if mask & (1 << b) and b not in CAPS.values()})


def test(lab) -> None:
    build = build_dir()
    if build is None:
        raise Skip("MOBIKE_BUILD_DIR is not set (cpack needs the build's CPackConfig.cmake)")
    deb = build_package(lab, build)
    log(f"built {deb.name}")
    c = Container(lab, deb)
    try:
        run_in(c)
    finally:
        if os.environ.get("MOBIKE_KEEP_CONTAINER") != "1":
            c.close()


def run_in(c: Container) -> None:
    wait_until(c.booted, 90, "systemd in the container running (is-system-running)", interval=0.5)
    log(f"systemd is PID 1 of the container (pid {c.pid1} here): "
        f"{c.run('systemctl', 'is-system-running', check_rc=False).stdout.strip()}")
    installed = c.run("dpkg", "-i", "/root/mobiked.deb", timeout=120)
    log("dpkg -i: " + " / ".join(line for line in installed.stdout.splitlines() if "mobiked" in line))
    enabled = c.run("systemctl", "is-enabled", "mobiked.service", check_rc=False).stdout.strip()
    check(enabled == "enabled", f"after dpkg -i, mobiked.service is {enabled!r}, not enabled")

    def active():
        s = c.show("mobiked.service", "ActiveState", "SubState")
        if s.get("ActiveState") == "failed":
            raise Failure(f"mobiked.service failed:\n{c.journal('-u', 'mobiked.service')[-3000:]}")
        return s.get("ActiveState") == "active" and s.get("SubState") == "running"
    wait_until(active, 30, "mobiked.service active (running) after dpkg -i: READY=1 reached systemd")
    unit = c.show("mobiked.service", "MainPID", "Type", "NRestarts", "FragmentPath", "DropInPaths")
    log(f"mobiked.service: {json.dumps(unit)}")
    check(unit["Type"] == "notify", f"Type={unit['Type']}")
    check(unit["FragmentPath"] == "/lib/systemd/system/mobiked.service" and not unit["DropInPaths"],
          f"not the package's unit as installed: {unit}")
    pid = int(unit["MainPID"])

    status = c.run("cat", f"/proc/{pid}/status").stdout
    bounding = caps_bounding(status)
    check(bounding == set(CAPS), f"the daemon's bounding set is {sorted(bounding)}, not {sorted(CAPS)}")
    check(re.search(r"^NoNewPrivs:\s*1$", status, re.M) is not None, "no_new_privs is not set")
    check(re.search(r"^Seccomp:\s*2$", status, re.M) is not None, "no seccomp filter on the daemon")
    # In the daemon's own mount namespace (ProtectSystem=strict, RuntimeDirectory=).
    ro = c.run("nsenter", "-t", str(pid), "-m", "sh", "-c", "touch /etc/mobiked/x", check_rc=False)
    check(ro.returncode != 0 and "Read-only" in ro.stderr, f"/etc is writable to the daemon: {ro.stderr}")
    rundir = c.run("stat", "-c", "%a %U", "/run/mobiked").stdout.strip()
    check(rundir == "700 root", f"/run/mobiked is {rundir}, not 700 root")
    check(c.run("test", "-S", "/run/mobiked/mobiked.sock", check_rc=False).returncode == 0,
          "no control socket at /run/mobiked/mobiked.sock")
    log(f"hardening: bounding set {sorted(bounding)}, no_new_privs, seccomp, / read-only, /run/mobiked 700")

    conns = json.loads(c.run("mobikectl", "list-conns", "--json").stdout)
    check(conns == [], f"the example configuration has connections: {conns}")

    entries = c.unit_entries()
    ours = [e for e in entries if e.get("_PID") == str(pid)]
    check(ours, f"no journal entry from the daemon (pid {pid}):\n{c.journal('-u', 'mobiked.service')[-2000:]}")
    transports = {e.get("_TRANSPORT") for e in ours}
    check(transports == {"journal"}, f"the daemon's entries came by {transports}, not as structured entries")
    log(f"journal: {len(ours)} structured entries, e.g. {ours[0].get('MESSAGE')!r}")

    before = len(ours)
    c.run("systemctl", "reload", "mobiked.service")

    def reloaded():
        now = c.unit_entries()
        return next((e["MESSAGE"] for e in now[before:]
                     if e.get("_PID") == str(pid) and "reload" in str(e.get("MESSAGE", "")).lower()), None)
    message = wait_until(reloaded, 10, "the daemon logging a reload after systemctl reload")
    after = c.show("mobiked.service", "MainPID", "ActiveState", "NRestarts")
    check(after["MainPID"] == str(pid) and after["ActiveState"] == "active",
          f"after systemctl reload: {after} (main PID was {pid})")
    log(f"systemctl reload: {message!r}, same main PID")

    # The watchdog, shortened from the unit's 60 s for the test (the only change to it):
    # a daemon that did not send WATCHDOG=1 every second would be killed and restarted.
    dropin = "/run/systemd/system/mobiked.service.d"
    c.run("mkdir", "-p", dropin)
    c.run("sh", "-c", f"printf '[Service]\\nWatchdogSec=2s\\n' > {dropin}/watchdog.conf")
    c.run("systemctl", "daemon-reload")
    c.run("systemctl", "restart", "mobiked.service")
    wait_until(active, 30, "mobiked.service active after restarting it with WatchdogSec=2s")
    w0 = c.show("mobiked.service", "MainPID", "NRestarts", "WatchdogUSec")
    check(w0["WatchdogUSec"] == "2s", f"the drop-in did not take: {w0}")
    time.sleep(6)
    w1 = c.show("mobiked.service", "MainPID", "NRestarts", "ActiveState", "WatchdogTimestampMonotonic")
    check(w1["MainPID"] == w0["MainPID"] and w1["NRestarts"] == w0["NRestarts"] and w1["ActiveState"] == "active",
          f"with WatchdogSec=2s the daemon did not last 6 s: {w0} -> {w1}\n{c.journal('-u', 'mobiked.service')[-2000:]}")
    check(w1["WatchdogTimestampMonotonic"] not in ("", "0"), f"systemd saw no WATCHDOG=1: {w1}")
    log(f"watchdog: WatchdogSec=2s, the daemon kept it fed for 6 s (pid {w1['MainPID']})")
    c.run("rm", f"{dropin}/watchdog.conf")
    c.run("systemctl", "daemon-reload")
    pid = int(w1["MainPID"])

    c.run("systemctl", "kill", "-s", "KILL", "mobiked.service")

    def restarted():
        s = c.show("mobiked.service", "MainPID", "ActiveState", "SubState", "NRestarts")
        return s if int(s["NRestarts"]) == int(w1["NRestarts"]) + 1 and s["ActiveState"] == "active" \
            and s["SubState"] == "running" and s["MainPID"] not in ("0", str(pid)) else None
    s = wait_until(restarted, 30, "systemd restarting mobiked after SIGKILL (Restart=on-failure)")
    check(c.run("mobikectl", "stats", check_rc=False).returncode == 0, "the restarted daemon does not answer")
    log(f"SIGKILL: restarted by systemd as pid {s['MainPID']}, NRestarts {w1['NRestarts']} -> {s['NRestarts']}, "
        f"answering")

    c.run("systemctl", "stop", "mobiked.service")
    s = c.show("mobiked.service", "ActiveState", "Result", "ExecMainStatus")
    check(s["ActiveState"] == "inactive" and s["Result"] == "success",
          f"after systemctl stop: {s}\n{c.journal('-u', 'mobiked.service')[-2000:]}")
    check(c.run("test", "-e", "/run/mobiked/mobiked.sock", check_rc=False).returncode != 0,
          "the control socket is still there after stop")
    log(f"stopped: {s}")

    # The maintainer scripts with systemd running: an upgrade (the same version again)
    # restarts the daemon, a removal stops it and keeps the conffile, a purge takes both.
    c.run("systemctl", "start", "mobiked.service")
    wait_until(active, 30, "mobiked.service active again after systemctl start")
    before = c.show("mobiked.service", "MainPID")["MainPID"]
    c.run("dpkg", "-i", "/root/mobiked.deb", timeout=120)
    wait_until(active, 30, "mobiked.service active after the upgrade")
    after = c.show("mobiked.service", "MainPID")["MainPID"]
    check(after not in ("0", before), f"the upgrade did not restart the daemon: main PID {before} -> {after}")
    c.run("dpkg", "-r", "mobiked", timeout=120)
    s = c.show("mobiked.service", "ActiveState", "LoadState")
    check(s["ActiveState"] == "inactive", f"after dpkg -r: {s}")
    check(c.run("test", "-e", "/usr/sbin/mobiked", check_rc=False).returncode != 0, "dpkg -r left /usr/sbin/mobiked")
    check(c.run("test", "-f", "/etc/mobiked/mobiked.toml", check_rc=False).returncode == 0,
          "dpkg -r took the conffile /etc/mobiked/mobiked.toml")
    c.run("dpkg", "--purge", "mobiked", timeout=120)
    check(c.run("test", "-e", "/etc/mobiked/mobiked.toml", check_rc=False).returncode != 0,
          "dpkg --purge left /etc/mobiked/mobiked.toml")
    check(c.run("test", "-L", "/etc/systemd/system/multi-user.target.wants/mobiked.service",
                check_rc=False).returncode != 0, "dpkg --purge left the unit enabled")
    log(f"maintainer scripts: upgrade restarted the daemon (pid {before} -> {after}), remove stopped it "
        f"and kept the conffile, purge took the conffile and the enablement")


def requires():
    require_netns()
    require_commands("cpack", "dpkg-deb", "dpkg", "nsenter", "unshare", "pivot_root", "chroot")
    if not SYSTEMD.exists():
        raise Skip(f"{SYSTEMD} is not installed (Debian package systemd)")


if __name__ == "__main__":
    run_test(test, "Debian package under a real systemd in a container", timeout=240, requires=requires)
