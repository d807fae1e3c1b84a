"""`make test-vm`: run the VM test group (`pytest -m vm`, tests/vm/) under a stock Debian kernel.

Why a VM: a hybrid cgroup host has only hugetlb in v2, and some kernels lack the dummy, ipvlan
and vlan drivers; the group proves on a full kernel what the host suite cannot. How: the
generic Debian kernel package (the one `linux-image-amd64` depends on; the cloud flavour has
no 9p) is downloaded and unpacked, not installed, into tests/vm/.cache/kernel/; virtme-ng
boots it under qemu with the host's root filesystem shared read-only and one directory shared
writable, runs tests/vm/guest.sh there as root, and returns its exit status. Under software
emulation a boot costs 20-40 s (udev, mostly) and code runs 35-100x slower, so the whole group
runs in one boot, and in one Python process (tests/vm/conftest.py's `linx` fixture).
The JUnit XML comes back through the shared directory (tests/vm/.cache/run/junit.xml).

    python tests/vm/run.py            boot the VM and run the group (what `make test-vm` does)
    python tests/vm/run.py --auto     for `make test`: run the group on this host when it has
                                      what the group needs, in the VM when it does not, and
                                      skip with the reason only when qemu cannot run here
    ... -- -k memory                  extra arguments for pytest
    python tests/vm/run.py --bench bench/spec.py [-- ARGS]
                                      boot the same VM and run that script (the linx venv's
                                      python, as root, $LINX_VM set) instead of the group;
                                      its output comes back on the console and in
                                      tests/vm/.cache/run/bench.txt (what `make bench-vm` does)

Environment: LINX_VM_KERNEL=/path/boot/vmlinuz-X boots that kernel (modules are looked up in
/path/lib/modules/X); LINX_VM_KVM=1 uses KVM (here a nested hypervisor cannot run a stock
kernel, so emulation is the default); LINX_VM_TIMEOUT (seconds, default 900) bounds the boot.
"""
import argparse
import glob
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CACHE = os.path.join(HERE, ".cache")
VNG_VERSION = "1.42"
QEMU = "qemu-system-x86_64"
NEEDED_CONTROLLERS = ("cpu", "memory", "pids")
NEEDED_MODULES = ("dummy", "ipvlan", "8021q",                     # link kinds
                  "nf_flow_table", "nf_flow_table_inet", "nft_flow_offload",  # nft flowtables
                  "nfnetlink_queue", "nft_queue")                  # nft queue (NFQUEUE)
INSIDE_ENV = "LINX_VM"          # tests/vm/conftest.py runs the group only when this is set


def say(text: str) -> None:
    print(f"test-vm: {text}", file=sys.stderr, flush=True)


class Skip(Exception):
    """qemu cannot run here at all: the group is skipped, with this reason."""


class Failed(Exception):
    """Setting the VM up failed: the group fails, with this reason."""


# -- what this host has ----------------------------------------------------

def cgroup2_root() -> str | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split(" ", 1)[0] == "cgroup2":
                return left.split(" ")[4]
    return None


def host_lacks() -> list[str]:
    """What the group needs and this host lacks: cpu, memory and pids delegated from the root
    of a cgroup2 mount (an init system does that; the group never writes the root), and the
    dummy, ipvlan and 8021q drivers and the nft flowtable and queue modules (built in or
    loadable: `modprobe -n`)."""
    missing = []
    root = cgroup2_root()
    enabled = []
    if root:
        try:
            with open(os.path.join(root, "cgroup.subtree_control")) as f:
                enabled = f.read().split()
        except OSError:
            pass
    missing += [f"cgroup2 {c} controller" for c in NEEDED_CONTROLLERS if c not in enabled]
    for module in NEEDED_MODULES:
        found = (os.path.isdir(f"/sys/module/{module}") or shutil.which("modprobe") and
                 subprocess.run(["modprobe", "-n", "-q", module]).returncode == 0)
        if not found:
            missing.append(f"{module} module")
    return missing


def qemu_unusable() -> str | None:
    if platform.machine() != "x86_64":
        return f"the VM group boots an amd64 kernel; this machine is {platform.machine()}"
    if shutil.which(QEMU) is None:
        return f"{QEMU} is not installed (Debian package qemu-system-x86)"
    if os.environ.get("LINX_VM_KERNEL") is None and shutil.which("apt-get") is None \
            and not glob.glob(os.path.join(CACHE, "kernel", "*", "boot", "vmlinuz-*")):
        return "no apt-get to fetch a Debian kernel, and none cached in tests/vm/.cache/kernel"
    return None


# -- what the VM needs -----------------------------------------------------

def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, text=True, capture_output=True, **kw)


def vng() -> str:
    """virtme-ng in its own venv under the cache (it is a tool, not a dependency of linx).
    Returns its bin directory: vng calls virtme-run from PATH."""
    venv = os.path.join(CACHE, "vng")
    bindir = os.path.join(venv, "bin")
    if os.path.exists(os.path.join(bindir, "vng")):
        have = run([os.path.join(bindir, "vng"), "--version"]).stdout.split()
        if have[-1:] == [VNG_VERSION]:
            return bindir
    say(f"installing virtme-ng {VNG_VERSION} into {os.path.relpath(venv, REPO)}")
    shutil.rmtree(venv, ignore_errors=True)
    python = shutil.which("python3") or sys.executable
    for argv in ([python, "-m", "venv", venv],
                 [os.path.join(bindir, "pip"), "install", "-q", f"virtme-ng=={VNG_VERSION}"]):
        r = run(argv)
        if r.returncode != 0:
            raise Failed(f"{' '.join(argv[:3])} failed: {(r.stderr or r.stdout).strip()[-500:]}")
    return bindir


def kernel_package() -> str | None:
    """The versioned package `linux-image-amd64` depends on (linux-image-6.1.0-N-amd64)."""
    r = run(["apt-cache", "depends", "linux-image-amd64"])
    for line in r.stdout.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "Depends" and value.startswith("linux-image-"):
            return value.strip()
    return None


def kernel() -> str:
    """The vmlinuz to boot: $LINX_VM_KERNEL, else the cached unpacked Debian package (fetched
    when missing or when apt now names a newer one; older ones are removed). Unpacked into a
    temporary directory first, so an interrupted run never leaves half a kernel in the cache."""
    if os.environ.get("LINX_VM_KERNEL"):
        return os.environ["LINX_VM_KERNEL"]
    store = os.path.join(CACHE, "kernel")
    cached = sorted(glob.glob(os.path.join(store, "*", "boot", "vmlinuz-*")))
    package = kernel_package() if shutil.which("apt-cache") else None
    if package is None:
        if cached:
            return cached[-1]
        raise Failed("cannot tell which kernel package linux-image-amd64 depends on "
                     "(apt-get update?), and none is cached")
    target = os.path.join(store, package)
    found = glob.glob(os.path.join(target, "boot", "vmlinuz-*"))
    if found:
        return found[0]
    say(f"fetching {package}")
    work = os.path.join(store, ".incoming")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    r = run(["apt-get", "download", "-q", package], cwd=work)
    debs = glob.glob(os.path.join(work, "*.deb"))
    if r.returncode != 0 or not debs:
        if cached:
            say(f"apt-get download {package} failed; booting the cached {cached[-1]}")
            return cached[-1]
        raise Failed(f"apt-get download {package} failed: {r.stderr.strip()[-500:]}")
    r = run(["dpkg-deb", "-x", debs[0], os.path.join(work, "root")])
    if r.returncode != 0:
        raise Failed(f"dpkg-deb -x {os.path.basename(debs[0])} failed: {r.stderr.strip()}")
    for old in glob.glob(os.path.join(store, "linux-image-*")):
        shutil.rmtree(old)
    os.rename(os.path.join(work, "root"), target)
    shutil.rmtree(work)
    return glob.glob(os.path.join(target, "boot", "vmlinuz-*"))[0]


# -- running the group -----------------------------------------------------

def compile_ahead() -> None:
    """Byte-compile linx and the group here, next to the sources (__pycache__, ignored by
    git): the checkout is read-only in the guest, so what is not compiled now is compiled
    again at each import there, which costs seconds under emulation."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "linx_core", "linx_cli", "tests"],
                   cwd=REPO, stdout=subprocess.DEVNULL, check=False)


def boot(vmlinuz: str, share: str, guest_args: list[str], timeout: float) -> int:
    """One boot: guest.sh runs the group and leaves junit.xml in `share` (or, given --bench
    SCRIPT, runs that and leaves bench.txt and bench.status). The VM gets its own process
    group, so a timeout stops vng and qemu together."""
    bindir = vng()
    guest = " ".join(map(shlex.quote, ["sh", os.path.join(HERE, "guest.sh"), share, *guest_args]))
    argv = [os.path.join(bindir, "vng"), "--cpus", "2", "--memory", "1G", "--user", "root",
            f"--rwdir={share}", "--run", vmlinuz, "--exec", guest]
    if os.environ.get("LINX_VM_KVM") != "1":
        argv.insert(1, "--disable-kvm")
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    relay = threading.Thread(target=_relay, args=(proc.stdout,), daemon=True)
    relay.start()
    try:
        status = proc.wait(timeout)
        relay.join(10)
        return status
    except subprocess.TimeoutExpired:
        say(f"the VM did not finish in {timeout:g}s; stopping it")
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(5)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        return -1
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def _relay(stream) -> None:
    """The guest's console, copied to our stdout. Through a pipe: handed a log file directly,
    the console wrote over it from its start; and without the NULs it pads lines with."""
    for chunk in iter(lambda: stream.read1(65536), b""):
        sys.stdout.buffer.write(chunk.replace(b"\0", b""))
        sys.stdout.buffer.flush()


def on_host(pytest_args: list[str]) -> int:
    """The host has everything: the same group, run here (it only touches cgroups it makes
    under the cgroup2 root and links in namespaces it makes)."""
    argv = [sys.executable, "-m", "pytest", "-m", "vm", "-q", "-ra", HERE, *pytest_args]
    return subprocess.run(argv, cwd=REPO, env={**os.environ, INSIDE_ENV: "host"}).returncode


def results(junit: str) -> dict | None:
    """Counts from the JUnit XML pytest wrote in the guest; None when there is none."""
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return None
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return None
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}


def bench_status(share: str, status: int, elapsed: float) -> int:
    """The --bench script's exit status, which guest.sh leaves in bench.status."""
    try:
        with open(os.path.join(share, "bench.status")) as f:
            code = int(f.read())
    except (OSError, ValueError):
        say(f"FAILED: the bench script did not finish in the VM (exit status {status}) after {elapsed:.0f}s")
        return 1
    say(f"{'bench done' if code == 0 else f'FAILED: the bench script exited {code}'}; wall time "
        f"{elapsed:.0f}s; its output is in {os.path.relpath(os.path.join(share, 'bench.txt'), REPO)}")
    return 0 if code == 0 else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--auto", action="store_true",
                        help="on this host when it has what the group needs; else in the VM; "
                             "skipped with the reason only when qemu cannot run")
    parser.add_argument("--bench", metavar="SCRIPT",
                        help="run this script in the VM instead of the group (bench/spec.py)")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest, or to the --bench script (after --)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        if args.auto and not args.bench:
            lacks = host_lacks()
            if not lacks:
                say("this host has what the VM group needs; running it here")
                return on_host(args.pytest_args)
            say(f"this host lacks {', '.join(lacks)}: running the VM group under qemu")
        reason = qemu_unusable()
        if reason:
            raise Skip(reason)
        vmlinuz = kernel()
        share = os.path.join(CACHE, "run")
        shutil.rmtree(share, ignore_errors=True)
        os.makedirs(share)
        timeout = float(os.environ.get("LINX_VM_TIMEOUT", 900))
        compile_ahead()
        say(f"booting {os.path.relpath(vmlinuz, REPO) if vmlinuz.startswith(REPO) else vmlinuz}")
        guest_args = args.pytest_args
        if args.bench:
            guest_args = ["--bench", os.path.abspath(args.bench), *guest_args]
        status = boot(vmlinuz, share, guest_args, timeout)
    except Skip as e:
        say(f"SKIPPED the VM group: {e}")
        return 0
    except Failed as e:
        say(f"FAILED: {e}")
        return 1
    elapsed = time.monotonic() - started
    if args.bench:
        return bench_status(share, status, elapsed)
    counts = results(os.path.join(share, "junit.xml"))
    if counts is None:
        say(f"FAILED: no results came back from the VM (exit status {status}) after {elapsed:.0f}s")
        return 1
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    ok = status == 0 and counts["failures"] == 0 and counts["errors"] == 0 and counts["tests"] > counts["skipped"]
    say(f"{'passed' if ok else 'FAILED'}: {summary} (exit status {status}); "
        f"wall time {elapsed:.0f}s; {os.path.relpath(share, REPO)}/junit.xml")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
