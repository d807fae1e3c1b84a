"""The syscall tables: regenerated from the stored kernel sources they are what is checked in,
and they agree with libseccomp's resolver and the installed <asm/unistd_64.h>."""
import ctypes
import ctypes.util
import os
import re

import pytest

from linx_core.seccomp import gentables, syscalls

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "seccomp", "kernel")
PKG = os.path.dirname(syscalls.__file__)


def test_checked_in_tables_are_generated_from_the_kernel_sources():
    generated = gentables.generate(os.path.join(DATA, "syscall_64.tbl"), os.path.join(DATA, "unistd.h"))
    for name, text in generated.items():
        with open(os.path.join(PKG, name)) as f:
            assert f.read() == text, f"{name} is stale: rerun python -m linx_core.seccomp.gentables"


def test_all_syscalls_not_a_hand_picked_few():
    x86, arm = syscalls.table("x86_64"), syscalls.table("aarch64")
    assert len(x86) > 370 and len(arm) > 310
    assert x86["read"] == 0 and x86["seccomp"] == 317 and x86["listns"] == 470
    assert "rt_sigaction" in x86 and x86["rt_sigaction"] == 13        # the 64 abi, not x32's 512
    assert max(x86.values()) < 512
    assert arm["read"] == 63 and arm["openat"] == 56 and arm["seccomp"] == 277


def test_aarch64_reads_the_header_as_arm64_does():
    """64-bit names for the __NR3264 aliases, the __ARCH_WANT_* ones arm64 wants, no 32-bit ones."""
    arm = syscalls.table("aarch64")
    assert {"fcntl": 25, "lseek": 62, "mmap": 222, "fstat": 80, "newfstatat": 79, "renameat": 38,
            "getrlimit": 163, "sync_file_range": 84, "clone3": 435, "memfd_secret": 447}.items() <= arm.items()
    for absent in ("fcntl64", "llseek", "mmap2", "clock_gettime64", "sync_file_range2", "open", "fork"):
        assert absent not in arm


def test_preprocessor_branches():
    text = """
#define __NR_a 1
#if defined(__ARCH_WANT_X) || __BITS_PER_LONG != 32
#define __NR_b 2
#elif 1
#define __NR_c 3
#else
#define __NR_d 4
#endif
#ifndef __ARCH_WANT_X
#define __NR3264_e 5
#endif
#if __BITS_PER_LONG == 64 && !defined(__SYSCALL_COMPAT)
#define __NR_e __NR3264_e
#endif
#define __NR_syscalls 6
"""
    assert gentables.parse_unistd(text, {"__BITS_PER_LONG": 64}) == {"a": 1, "b": 2, "e": 5}
    assert gentables.parse_unistd(text, {"__BITS_PER_LONG": 32}) == {"a": 1, "c": 3}
    with pytest.raises(ValueError):
        gentables.parse_unistd("#if __import__('os')\n#endif\n", {})


def test_x86_64_against_asm_unistd_64_h():
    path = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
    if not os.path.exists(path):
        pytest.skip("linux-libc-dev headers missing")
    with open(path) as f:
        header = {m[0]: int(m[1]) for m in re.findall(r"#define __NR_(\w+) (\d+)", f.read())}
    x86 = syscalls.table("x86_64")
    assert header and all(x86[name] == nr for name, nr in header.items())


@pytest.mark.skipif(not ctypes.util.find_library("seccomp"), reason="libseccomp2 missing")
@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_against_libseccomp(arch):
    """Every name both know has the same number; every number libseccomp names below the
    newest syscall, linx names too (libseccomp 2.5 predates the last few syscalls)."""
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp"))
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    token = syscalls.AUDIT_ARCH[arch]
    table = syscalls.table(arch)
    known = 0
    for name, nr in table.items():
        theirs = lib.seccomp_syscall_resolve_name_arch(token, name.encode())
        if theirs >= 0:
            known += 1
            assert theirs == nr, name
    assert known > 300
    for nr in range(0, 600):
        ptr = lib.seccomp_syscall_resolve_num_arch(token, nr)
        if ptr:
            name = ctypes.string_at(ptr).decode()
            ctypes.CDLL(None).free(ctypes.c_void_p(ptr))
            assert syscalls.name(nr, arch) is not None, (nr, name)


def test_lookups_and_errors():
    from linx_core.errors import UsageError
    assert syscalls.name(99999, "x86_64") is None
    assert syscalls.check_arch("amd64") == "x86_64" and syscalls.check_arch("arm64") == "aarch64"
    with pytest.raises(UsageError, match="unsupported architecture 'mips'"):
        syscalls.check_arch("mips")
    with pytest.raises(UsageError, match="unknown syscall 'nope' on aarch64"):
        syscalls.resolve("nope", "aarch64", "x")
