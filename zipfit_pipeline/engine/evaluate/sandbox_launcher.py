"""Run inside the sandbox's namespaces (see `sandbox.py`): set the limits, then replace itself with the program.

Standalone on purpose (run as `python -I sandbox_launcher.py LIMITS`, it imports nothing of the package). The
program arrives on standard input. Where the process is root in a new mount namespace, fresh size-limited tmpfs
mounts hide /tmp, /var/tmp and /dev/shm (the only world-writable places), the program runs in one of them, and
the process drops to `nobody` so that the process-count limit applies (the kernel never applies it to root). The
program runs under the interpreter the host chose (one `nobody` can execute).
"""

import ctypes
import json
import os
import resource
import sys

NOBODY = 65534
SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")


def mount_scratch(size_bytes: int) -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    for folder in SCRATCH:
        if (
            os.path.isdir(folder)
            and libc.mount(b"tmpfs", folder.encode(), b"tmpfs", 0, f"size={size_bytes},mode=1777".encode()) != 0
        ):
            return False
    return True


def main() -> None:
    limits = json.loads(sys.argv[1])
    program = sys.stdin.buffer.read()
    isolated = limits["isolated"] and os.geteuid() == 0 and mount_scratch(limits["disk_bytes"])
    if limits["isolated"] and not isolated:
        sys.exit("sandbox: could not mount the scratch folders in the new mount namespace")
    work = os.path.join("/tmp" if isolated else limits["workdir"], "run")
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "program.py")
    with open(path, "wb") as file:
        file.write(program)
    if isolated and os.getuid() == 0 and _nobody_is_mapped():
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
    if isolated and os.getuid() == 0 and _nobody_is_mapped():
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
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
