"""The seccomp filter of the code sandbox, compiled by libseccomp (through `pyseccomp`) into the classic-BPF
program that bubblewrap installs with `--seccomp FD` right before it executes the interpreter.

Everything is allowed except the calls that could reach beyond the namespaces bubblewrap built: making or
joining namespaces, mounting, tracing other processes, loading BPF, kernel keyrings, kexec, kernel
modules, raw sockets and every socket family but unix, IPv4 and IPv6 (vsock reaches a VM's host past the
network namespace), io_uring (whose operations bypass seccomp), and a handful of host-global
administration calls. They fail with EPERM, so a program that tries sees an ordinary OSError. Syscalls of
another ABI (i386 `int 0x80`, x32) kill the process: libseccomp's default for a foreign architecture.
"""

from __future__ import annotations

import errno
import functools
import os
import socket

# Namespace flags of clone(2) and unshare(2); clone3 passes its flags in memory that seccomp cannot read,
# so it answers ENOSYS and glibc falls back to clone, whose flags are checked here.
NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
    "CLONE_NEWTIME": 0x00000080,
}

DENIED_SYSCALLS = (
    # namespaces and mounts
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    # other processes' memory and tracing
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    # kernel interfaces with a history of escapes
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "name_to_handle_at",
    # host administration
    "reboot",
    "swapon",
    "swapoff",
    "syslog",
    "acct",
    "quotactl",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
    "iopl",
    "ioperm",
    "personality",
    "lookup_dcookie",
    "vhangup",
)

SOCK_TYPE_MASK = 0xF  # the type bits of socket(2)'s second argument, without SOCK_NONBLOCK | SOCK_CLOEXEC


@functools.lru_cache(maxsize=1)
def filter_bpf() -> bytes:
    """The compiled filter (built once per process). Raises OSError or RuntimeError (from pyseccomp's
    import) when libseccomp is missing; the caller turns that into a refusal to run model code."""
    import pyseccomp as sc  # loads libseccomp.so.2 with ctypes at import time

    f = sc.SyscallFilter(defaction=sc.ALLOW)
    eperm = sc.ERRNO(errno.EPERM)
    for name in DENIED_SYSCALLS:
        f.add_rule(eperm, name)
    for flag in NAMESPACE_FLAGS.values():
        f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    # Only unix, IPv4 and IPv6 sockets (which the network namespace confines); every other family is
    # refused: vsock reaches the VM's host past any network namespace, packet and netlink sockets see
    # devices, and the rest (AF_ALG, AF_KEY, Bluetooth, CAN, RDS, TIPC, XDP, …) is kernel attack surface.
    for family in (0, *range(socket.AF_INET + 1, socket.AF_INET6)):
        f.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socket", sc.Arg(0, sc.EQ, family))
    f.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socket", sc.Arg(0, sc.GE, socket.AF_INET6 + 1))
    f.add_rule(eperm, "socket", sc.Arg(1, sc.MASKED_EQ, SOCK_TYPE_MASK, socket.SOCK_RAW))
    with os.fdopen(os.memfd_create("gecko-seccomp"), "w+b") as out:
        f.export_bpf(out)
        out.seek(0)
        return out.read()
