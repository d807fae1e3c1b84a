"""bench/attach: throughput of `cat` of a 256 MiB file through an attached linx session vs
through `script -qc` (a direct PTY), in one run. Output goes to /dev/null in both.

    .venv/bin/python bench/attach.py [MiB]
"""
import os
import subprocess
import sys
import tempfile
import time
import uuid

MIB = int(sys.argv[1]) if len(sys.argv) > 1 else 256
LINX = os.path.join(os.path.dirname(sys.executable), "linx")


def timed(argv) -> float:
    t = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def main():
    with tempfile.NamedTemporaryFile(dir="/tmp") as f:
        block = (b"linx attach throughput " * 44 + b"\n") * 1024
        for _ in range(MIB * 1024 * 1024 // len(block)):
            f.write(block)
        f.flush()
        size = os.path.getsize(f.name)
        name = f"bench-{uuid.uuid4().hex[:6]}"
        # the workload waits for the attach client before it writes a byte
        go = f"/tmp/{name}.go"
        subprocess.run([LINX, "run", "-dt", "--name", name, "--", "sh", "-c",
                        f"while [ ! -e {go} ]; do sleep 0.01; done; cat {f.name}"], check=True,
                       stdout=subprocess.DEVNULL)
        t = time.perf_counter()
        client = subprocess.Popen([LINX, "attach", "--no-stdin", name], stdout=subprocess.DEVNULL)
        time.sleep(0.3)
        open(go, "w").close()
        client.wait()
        linx_s = time.perf_counter() - t - 0.3
        os.unlink(go)
        subprocess.run([LINX, "rm", "-f", name], check=True)
        script_s = timed(["script", "-qc", f"cat {f.name}", "/dev/null"])
    mb = size / 1e6
    print(f"{size >> 20} MiB: linx attach {mb / linx_s:.0f} MB/s ({linx_s:.2f} s), "
          f"script -qc {mb / script_s:.0f} MB/s ({script_s:.2f} s), ratio {script_s / linx_s:.2f}x "
          "(target >= 0.5x)")


if __name__ == "__main__":
    main()
