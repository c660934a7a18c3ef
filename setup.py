"""Builds the optional C accelerator; wsserver works without it (pure Python)."""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Build the accelerator when a compiler is there; skip it otherwise."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler: the pure-Python fallback is used
            print(f"wsserver: C accelerator not built ({exc}); using pure Python")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"wsserver: C accelerator not built ({exc}); using pure Python")


setup(
    ext_modules=[
        Extension(
            "wsserver.protocol._speedups",
            ["src/wsserver/protocol/_speedups.c"],
            extra_compile_args=["-O3"],
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
