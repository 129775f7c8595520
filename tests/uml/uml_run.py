#!/usr/bin/env python3
"""Runs one command inside a user-mode-linux kernel with ESP, and returns its exit status.

    tests/uml/uml_run.py [--mem 1536M] [--timeout S] [--keep] -- COMMAND [ARG...]

Debian's user-mode-linux kernel (`linux.uml`, package user-mode-linux) runs as an
ordinary process: no /dev/kvm, no disk image. Its root is the host's, read-only through
hostfs, so the build tree, python3, strongSwan and iproute2 are those of the host; a
scratch directory of the host's is mounted writable inside it at the same path and
holds the command, its output and its exit status, and is TMPDIR inside, so a test's
kept logs outlive the kernel. tests/uml/init.sh, PID 1 inside, loads the modules
(ESP, XFRM, veth, NAT, ...) and runs the command in the kernel's own namespaces, where
netns tests make their namespaces as they do on the host.

Exit status: the command's (77 = skipped passes through); 77 with the reason when this
machine cannot boot the kernel; 1 when the kernel did not report a status (crash or
timeout), with the end of its console. The command's output is printed after it ends.
Environment: MOBIKE_*, PYTHON* and PATH pass through; MOBIKE_UML=1 tells the command
where it runs.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXIT_SKIP = 77
KERNEL = os.environ.get("MOBIKE_UML_KERNEL", "/usr/bin/linux.uml")
MODULES = Path("/usr/lib/uml/modules")
INIT = Path(__file__).resolve().parent / "init.sh"
PASS_ENV = ("MOBIKE_", "PYTHON")


def skip(reason: str) -> int:
    print(f"SKIP: {reason}", flush=True)
    return EXIT_SKIP


def cannot_boot() -> str | None:
    if not os.access(KERNEL, os.X_OK):
        return f"no user-mode-linux kernel at {KERNEL} (Debian package user-mode-linux)"
    if not MODULES.is_dir() or not any(MODULES.iterdir()):
        return f"no modules for the user-mode-linux kernel under {MODULES}"
    if not shutil.which("modprobe") and not Path("/sbin/modprobe").exists():
        return "no modprobe (Debian package kmod) to load the kernel's modules"
    return None


def write_command(scratch: Path, argv: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k.startswith(PASS_ENV)}
    # /tmp/uml-bin: iptables-legacy under its plain names (init.sh says why).
    env["PATH"] = "/tmp/uml-bin:" + os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    env["MOBIKE_UML"] = "1"
    env["TMPDIR"] = str(scratch / "tmp")
    env["HOME"] = str(scratch)
    lines = [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    lines.append(f"cd {shlex.quote(os.getcwd())}")
    lines.append(shlex.join(argv))
    (scratch / "tmp").mkdir()
    (scratch / "cmd.sh").write_text("\n".join(lines) + "\n")


def boot(scratch: Path, mem: str, timeout: float) -> tuple[int | None, str]:
    """Returns (status or None, the kernel's console)."""
    umid = f"mobike{os.getpid()}"
    args = [KERNEL, f"mem={mem}", "root=/dev/root", "rootfstype=hostfs", "rootflags=/", "ro",
            f"init={INIT}", f"mobike_scratch={scratch}", f"umid={umid}", f"uml_dir={scratch}",
            "quiet", "loglevel=3", "con0=fd:0,fd:1", "con=null", "ssl=null"]
    console = scratch / "kernel.log"
    # The kernel's memory is a file in TMPDIR: on tmpfs it costs no disk writes.
    env = dict(os.environ, TMPDIR="/dev/shm" if os.path.isdir("/dev/shm") else str(scratch))
    with open(console, "wb") as out:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            print(f"uml_run: no status after {timeout:.0f} s, kernel killed", flush=True)
        else:
            # The kernel's helper processes share its session; none may outlive it.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    rc_file = scratch / "rc"
    status = int(rc_file.read_text().strip()) if rc_file.exists() and rc_file.read_text().strip() else None
    return status, console.read_text(errors="replace")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mem", default="1536M")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    opts = ap.parse_args()
    argv = opts.command[1:] if opts.command[:1] == ["--"] else opts.command
    if not argv:
        ap.error("no command")
    if os.geteuid() != 0:
        return skip("needs root (the command makes network namespaces inside the kernel)")
    reason = cannot_boot()
    if reason:
        return skip(reason)
    # Not under /tmp: the kernel mounts a tmpfs of its own there, which would hide it.
    base = os.environ.get("MOBIKE_UML_SCRATCH", "/var/tmp")
    scratch = Path(tempfile.mkdtemp(prefix="mobike-uml-", dir=base))
    keep = opts.keep or os.environ.get("MOBIKE_KEEP_LOGS") == "1"
    try:
        write_command(scratch, argv)
        t0 = time.monotonic()
        status, console = boot(scratch, opts.mem, opts.timeout)
        out = scratch / "console.log"
        if out.exists():
            sys.stdout.write(out.read_text(errors="replace"))
        mods = scratch / "modules.log"
        if mods.exists():
            sys.stdout.write(mods.read_text())
        if status is None:
            print("uml_run: the kernel reported no exit status; its console ends:", flush=True)
            sys.stdout.write("\n".join(console.splitlines()[-40:]) + "\n")
            keep = True
            return 1
        print(f"uml_run: exit status {status} after {time.monotonic() - t0:.1f} s in user-mode-linux "
              f"{os.path.basename(KERNEL)}", flush=True)
        if status != 0:
            keep = True
        return status
    finally:
        if keep:
            print(f"uml_run: kept {scratch}", flush=True)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
