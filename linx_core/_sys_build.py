"""cffi build script for linx_core._sys: the syscalls Python 3.11 lacks.

Built at install (setup.py, cffi_modules). Each wrapper returns -1 and sets errno like libc.
"""
from cffi import FFI

ffi = FFI()
ffi.cdef("""
    int setns(int fd, int nstype);
    int unshare(int flags);
    int mount(const char *source, const char *target, const char *fstype,
              unsigned long flags, const void *data);
    int umount2(const char *target, int flags);
    int linx_pivot_root(const char *new_root, const char *put_old);
    int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);
    int linx_capget(int pid, uint32_t data[6]);
    int linx_capset(uint32_t data[6]);
    long linx_ptrace(long request, int pid, unsigned long addr, void *data);
""")
ffi.set_source("linx_core._sys", r"""
    #define _GNU_SOURCE
    #include <sched.h>
    #include <stdint.h>
    #include <sys/mount.h>
    #include <sys/prctl.h>
    #include <sys/syscall.h>
    #include <unistd.h>
    #include <linux/capability.h>

    static int linx_pivot_root(const char *new_root, const char *put_old)
    {
        return syscall(SYS_pivot_root, new_root, put_old);
    }
    /* data: effective, permitted, inheritable for caps 0-31, then for 32-63 */
    static int linx_capget(int pid, uint32_t data[6])
    {
        struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, pid};
        return syscall(SYS_capget, &h, (struct __user_cap_data_struct *)data);
    }
    static int linx_capset(uint32_t data[6])
    {
        struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
        return syscall(SYS_capset, &h, (struct __user_cap_data_struct *)data);
    }
    /* the raw syscall: glibc's ptrace() is variadic and rewrites PEEK* results */
    static long linx_ptrace(long request, int pid, unsigned long addr, void *data)
    {
        return syscall(SYS_ptrace, request, pid, addr, data);
    }
""")

if __name__ == "__main__":
    ffi.compile(verbose=True)
