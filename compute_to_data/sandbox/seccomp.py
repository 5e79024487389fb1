"""The seccomp filter on top of the namespaces, as a BPF program built by libseccomp (``pyseccomp``) and handed to
bwrap (``--seccomp FD``), which loads it right before it execs the program.

Everything is allowed but the kernel's attack surface a DP job (Python, numpy, torch, pyarrow, opendp) never
needs; those calls fail with EPERM: the kernel keyrings (a key linked by one job must not be readable by the
next), ptrace and process_vm_*, new namespaces and setns, every mount call, bpf, perf_event_open, userfaultfd,
kexec, kernel modules, swap, reboot, iopl/ioperm, and personality flags that weaken ASLR or W^X. clone3 answers
ENOSYS (its flags sit in memory a filter cannot read), so the C library falls back to clone, whose flags it can.
Other architectures' system calls (i386 through int 0x80, x32) kill the process (libseccomp's bad-arch action)."""

from __future__ import annotations

import errno
import functools
import os
import tempfile

import pyseccomp as seccomp  # type: ignore[import-untyped]  # ctypes over libseccomp, no stubs

DENIED = (
    "add_key",
    "request_key",
    "keyctl",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "swapon",
    "swapoff",
    "reboot",
    "iopl",
    "ioperm",
    "acct",
    "quotactl",
    "syslog",
    "uselib",
    "vhangup",
    "open_by_handle_at",
    "name_to_handle_at",
    "fanotify_init",
    "lookup_dcookie",
)
CLONE_NEW_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
    "CLONE_NEWTIME": 0x00000080,
}
# personality(2) flags that switch off address-space randomisation or make data executable.
PERSONALITY_FLAGS = (0x0040000, 0x0100000, 0x0200000, 0x0400000)  # ADDR_NO_RANDOMIZE, MMAP_PAGE_ZERO, ...


def _filter() -> seccomp.SyscallFilter:
    deny = seccomp.ERRNO(errno.EPERM)
    flt = seccomp.SyscallFilter(seccomp.ALLOW)
    for name in DENIED:
        flt.add_rule(deny, name)
    for flag in CLONE_NEW_FLAGS.values():
        flt.add_rule(deny, "unshare", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
        flt.add_rule(deny, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    # personality(0xffffffff) only reads the persona (Python's platform module does): deny a flag being set by
    # any other value, i.e. the flag set and at least one other bit clear (one rule per bit: a rule compares an
    # argument once).
    for flag in PERSONALITY_FLAGS:
        for bit in range(32):
            if 1 << bit != flag:
                flt.add_rule(deny, "personality", seccomp.Arg(0, seccomp.MASKED_EQ, flag | 1 << bit, flag))
    flt.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    return flt


@functools.cache
def bpf_program() -> bytes:
    """The filter compiled to BPF for this machine's architecture (built once per process)."""
    with tempfile.TemporaryFile() as fh:
        _filter().export_bpf(fh)
        fh.seek(0)
        return fh.read()


def program_fd() -> int:
    """A fresh descriptor holding the BPF program at offset 0, for bwrap's ``--seccomp FD`` (close it after
    the start; bwrap reads it to the end)."""
    fd = os.memfd_create("sandbox-seccomp", os.MFD_CLOEXEC)
    try:
        os.write(fd, bpf_program())
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
