"""The README's commands run (issue 13).

Convention: a ```sh block on the line after `<!-- test -->` is run as one bash script with
`set -e -o pipefail`, so every command in it must exit 0 (write `cmd || echo "status $?"` where
a non-zero status is the point). It runs from the repository root, with the venv's `linx` first
on PATH, inside fresh network and mount namespaces (unshare), so interfaces, firewall rules and
mounts it makes go away with them; it must leave no session behind. Every other ```sh block
says why it is not run, on the line before it: `<!-- not tested: REASON -->`.
"""
import os
import re
import subprocess

import pytest

from conftest import BIN, linx

README = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "README.md")


def blocks() -> list[tuple[str, str, str]]:
    """(marker line or "", heading, body) of every ```sh block, in order."""
    out, heading, lines = [], "top", open(README).read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i].startswith("#"):
            heading = lines[i].lstrip("# ")
        if lines[i].strip() == "```sh":
            end = lines.index("```", i + 1)
            marker = lines[i - 1].strip() if i and lines[i - 1].startswith("<!--") else ""
            out.append((marker, heading, "\n".join(lines[i + 1:end]) + "\n"))
            i = end
        i += 1
    return out


TESTED = [(heading, body) for marker, heading, body in blocks() if marker == "<!-- test -->"]


def test_every_sh_block_is_run_or_says_why():
    unmarked = [(heading, body.split("\n")[0]) for marker, heading, body in blocks()
                if marker != "<!-- test -->" and not re.fullmatch(r"<!-- not tested: .+ -->", marker)]
    assert not unmarked, f"sh blocks without <!-- test --> or <!-- not tested: REASON -->: {unmarked}"


def test_the_readme_starts_with_the_two_setup_commands():
    first = blocks()[0][2]
    assert [line.split()[:2] for line in first.splitlines()] == [["make", "demo"], ["make", "test"]]
    assert len(TESTED) >= 3


def sessions() -> set[str]:
    from linx_core import sessions as s
    try:
        return set(os.listdir(s.run_dir()))
    except FileNotFoundError:
        return set()


@pytest.mark.parametrize("heading,body", TESTED, ids=[f"{i}-{h}" for i, (h, _) in enumerate(TESTED)])
def test_readme_block(heading, body):
    before = sessions()
    script = ("set -e -o pipefail\n"
              "trap 'echo \"README command failed with status $?: $BASH_COMMAND\" >&2' ERR\n" + body)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    r = subprocess.run(["unshare", "--net", "--mount", "--propagation", "private", "--",
                        "bash", "-c", 'ip link set lo up && exec bash -c "$0"', script],
                       cwd=os.path.dirname(README), env=env, capture_output=True, text=True, timeout=120)
    left = sessions() - before
    if left:
        linx("rm", "-f", *left)
    assert r.returncode == 0, f"{heading}:\n{r.stdout}\n{r.stderr}"
    assert not left, f"{heading}: sessions left behind: {left}"
