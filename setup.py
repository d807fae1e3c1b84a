"""Builds the two compiled parts at install: the cffi module linx_core._sys and the C agent
(agent/linx-agent.c -> linx_core/linx-agent). gcc is the only toolchain needed."""
import os
import subprocess

from setuptools import setup
from setuptools.command.build_ext import build_ext


class build_ext_and_agent(build_ext):
    def run(self):
        super().run()
        out_dir = os.path.dirname(self.get_ext_fullpath("linx_core._sys"))
        os.makedirs(out_dir, exist_ok=True)
        cc = os.environ.get("CC", "gcc")
        subprocess.check_call([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o",
                               os.path.join(out_dir, "linx-agent"), "agent/linx-agent.c"])


setup(cffi_modules=["linx_core/_sys_build.py:ffi"], cmdclass={"build_ext": build_ext_and_agent})
