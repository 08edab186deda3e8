"""Run inside the sandbox's namespaces (see `sandbox.py`): build the program's root, set the limits, then replace
itself with the program.

Standalone on purpose (run as `python -I sandbox_launcher.py LIMITS`, it imports nothing of the package). The
program arrives on standard input. Where the process is root in a new mount namespace it builds a new root and
pivots into it, so that isolation does not depend on knowing which host folders are writable:
- the root is an empty tmpfs, read-only once built;
- `/usr` and the top-level system folders (`/bin`, `/lib`, `/lib64`, ... or their links into `/usr`), the
  interpreter's installation prefix and `/etc/ld.so.cache` are read-only binds: what the interpreter and the shared
  libraries of its standard library need, nothing else of the host (no `/etc`, `/home`, `/root`, `/var`, `/run`,
  `/sys`, no project files);
- `/dev` holds only `null`, `zero`, `random` and `urandom`; `/proc` is a fresh mount for the program's own PID
  namespace (it sees its own processes only);
- `/tmp`, `/var/tmp` and `/dev/shm` are fresh size-limited tmpfs mounts, the only writable places; the program runs
  in `/tmp/run`.
Then the process drops to `nobody` (so that the process-count limit applies; the kernel never applies it to root),
or, where `nobody` is not mapped (an unprivileged user's namespace), enters a further user namespace in which it
holds no power over the mounts it was given.
"""

import ctypes
import json
import os
import platform
import resource
import sys

NOBODY = 65534
SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")
SYSTEM = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
DEVICES = ("null", "zero", "random", "urandom")
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, ST_RELATIME = 1024, 2048, 1 << 21, 4096
MNT_DETACH, PR_SET_NO_NEW_PRIVS, CLONE_NEWUSER = 2, 38, 0x10000000
LIBC = ctypes.CDLL(None, use_errno=True)


class SetupFailed(Exception):
    """The program's root could not be built; the message names the step."""


def _mount(source: str | None, target: str, kind: str | None, flags: int, options: str = "") -> None:
    encode = lambda text: None if text is None else text.encode()  # noqa: E731
    if LIBC.mount(encode(source), target.encode(), encode(kind), flags, encode(options or None)) != 0:
        raise SetupFailed(f"mount {target}: {os.strerror(ctypes.get_errno())}")


def _bind_read_only(host: str, target: str) -> None:
    """Bind one host file or folder (not what is mounted below it) and make the bind read-only and nosuid; the
    remount keeps the flags the host's mount has (a user namespace may not clear them)."""
    _mount(host, target, None, MS_BIND)
    host_flags = os.statvfs(host).f_flag  # ST_NODEV etc. share MS_'s values, except relatime
    kept = host_flags & (MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME) | (
        MS_RELATIME if host_flags & ST_RELATIME else 0
    )
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | kept)


def _place(host: str, root: str, folder: bool) -> str:
    """Create the mount point for `host` at the same path under `root`."""
    target = root + host
    os.makedirs(target if folder else os.path.dirname(target), exist_ok=True)
    if not folder:
        open(target, "a").close()
    return target


def build_root(root: str, python: str, scratch_bytes: int) -> None:
    """Make `root` (a fresh tmpfs) the program's whole file system view, then pivot into it."""
    for name in SYSTEM:
        host = "/" + name
        if os.path.islink(host):
            os.symlink(os.readlink(host), root + host)
        elif os.path.isdir(host):
            _bind_read_only(host, _place(host, root, folder=True))
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(python)))  # /usr for /usr/bin/python3
    system = [os.path.realpath("/" + name) for name in SYSTEM]
    if prefix != "/" and not any(f"{prefix}/".startswith(f"{folder}/") for folder in system):
        _bind_read_only(prefix, _place(prefix, root, folder=True))  # an interpreter of its own (pyenv, conda, /opt)
    if os.path.isfile("/etc/ld.so.cache"):
        _bind_read_only("/etc/ld.so.cache", _place("/etc/ld.so.cache", root, folder=False))
    for device in DEVICES:
        _mount("/dev/" + device, _place("/dev/" + device, root, folder=False), None, MS_BIND)
    _mount("proc", _place("/proc", root, folder=True), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for folder in SCRATCH:
        _mount(
            "tmpfs", _place(folder, root, folder=True), "tmpfs", MS_NOSUID | MS_NODEV, f"size={scratch_bytes},mode=1777"
        )
    os.makedirs(root + "/.old")
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise SetupFailed(f"pivot_root: no system call number known for {platform.machine()}")
    if LIBC.syscall(number, root.encode(), (root + "/.old").encode()) != 0:
        raise SetupFailed(f"pivot_root: {os.strerror(ctypes.get_errno())}")
    os.chdir("/")
    if LIBC.umount2(b"/.old", MNT_DETACH) != 0:
        raise SetupFailed(f"detach the host's root: {os.strerror(ctypes.get_errno())}")
    os.rmdir("/.old")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def isolate(limits: dict) -> None:
    """Build the root in this mount namespace: everything the host mounted stays private to it, and the new root is
    mounted on the run's own (empty) host folder."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = os.path.join(limits["workdir"], "root")
    os.makedirs(root)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    build_root(root, limits["python"], limits["disk_bytes"])


def main() -> None:
    limits = json.loads(sys.argv[1])
    program = sys.stdin.buffer.read()
    isolated = limits["isolated"]
    if isolated:
        if os.geteuid() != 0:
            sys.exit("sandbox: not root in the new user namespace")
        try:
            isolate(limits)
        except (SetupFailed, OSError) as error:
            sys.exit(f"sandbox: could not build the program's root: {error}")
    work = os.path.join("/tmp" if isolated else limits["workdir"], "run")
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "program.py")
    with open(path, "wb") as file:
        file.write(program)
    drop_to_nobody = isolated and _nobody_is_mapped()
    if drop_to_nobody:
        os.chown(work, NOBODY, NOBODY)
        os.chown(path, NOBODY, NOBODY)
    os.chdir(work)
    for name, value in (
        ("RLIMIT_AS", limits["memory_bytes"]),
        ("RLIMIT_CPU", limits["cpu_seconds"]),
        ("RLIMIT_FSIZE", limits["file_bytes"]),
        ("RLIMIT_NPROC", limits["processes"]),
        ("RLIMIT_NOFILE", 64),
        ("RLIMIT_CORE", 0),
    ):
        resource.setrlimit(getattr(resource, name), (value, value))
    if drop_to_nobody:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    elif isolated and LIBC.unshare(CLONE_NEWUSER) != 0:  # root of a user namespace: give up power over the mounts
        sys.exit(f"sandbox: could not leave the user namespace: {os.strerror(ctypes.get_errno())}")
    if LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        sys.exit("sandbox: could not set no_new_privs")
    os.execv(limits["python"], [limits["python"], "-I", "-S", path])


def _nobody_is_mapped() -> bool:
    """Whether uid 65534 exists in this user namespace (it does outside a user namespace made by an unprivileged
    user)."""
    with open("/proc/self/uid_map") as file:
        return any(
            int(start) <= NOBODY < int(start) + int(count) for start, _, count in (line.split() for line in file)
        )


if __name__ == "__main__":
    main()
