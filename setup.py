"""Native parts of tensor-fusion, built by one `pip install .` / `pip install -e .`.

* tfcore.ipc._shm               Cython binding of the shared-memory region (ext/shm.pyx)
* tfcore/native/libtfshim.so    LD_PRELOAD shim (ext/shim), plain C, no libpython
* tfcore/native/sim/libcuda.so.1, libnvidia-ml.so.1
                                simulated driver libraries (ext/simgpu), plain C

Build flavour, from the environment variable TF_NATIVE_BUILD:
  unset or "release"  -O2
  "debug"             -O0 -g
  "asan"              -O1 -g -fsanitize=address,undefined (run under LD_PRELOAD=libasan.so)
Our C code builds with -Wall -Wextra -Werror.  Editable installs: re-run `pip install -e .`
after changing anything under ext/.
"""

from __future__ import annotations

import os
from glob import glob

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

FLAVOURS: dict[str, tuple[list[str], list[str]]] = {
    "release": (["-O2"], []),
    "debug": (["-O0", "-g"], []),
    "asan": (
        ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined"],
        ["-fsanitize=address,undefined"],
    ),
}

# Leaf extension name -> file name of the plain C libraries (no Python ABI tag).
C_LIBRARIES = {
    "libtfshim": "libtfshim.so",
    "libcuda": "libcuda.so.1",
    "libnvidia_ml": "libnvidia-ml.so.1",
}


def flavour() -> tuple[list[str], list[str]]:
    name = os.environ.get("TF_NATIVE_BUILD", "release") or "release"
    if name not in FLAVOURS:
        raise SystemExit(f"TF_NATIVE_BUILD={name!r}: expected one of {', '.join(FLAVOURS)}")
    return FLAVOURS[name]


class BuildExt(build_ext):
    """Names the plain C libraries as the dynamic loader expects and exports no PyInit_."""

    def get_ext_filename(self, fullname: str) -> str:
        # Called both with the dotted full name and with the leaf alone.
        parts = fullname.split(".")
        if parts[-1] in C_LIBRARIES:
            return os.path.join(*parts[:-1], C_LIBRARIES[parts[-1]])
        return str(super().get_ext_filename(fullname))

    def build_extension(self, ext: Extension) -> None:
        # tfcore/native/sim is a plain directory, not a package: nothing else creates it.
        os.makedirs(os.path.dirname(self.get_ext_fullpath(ext.name)), exist_ok=True)
        super().build_extension(ext)

    def copy_extensions_to_source(self) -> None:
        # Same for the in-place copy that editable installs make.
        build_py = self.get_finalized_command("build_py")
        for ext in self.extensions:
            package = ".".join(self.get_ext_fullname(ext.name).split(".")[:-1])
            os.makedirs(build_py.get_package_dir(package), exist_ok=True)
        super().copy_extensions_to_source()

    def get_export_symbols(self, ext: Extension) -> list[str]:
        if ext.name.split(".")[-1] in C_LIBRARIES:
            return []
        return list(super().get_export_symbols(ext))


def c_library(name: str, sources: list[str]) -> Extension:
    opt, link_opt = flavour()
    return Extension(
        name,
        sources=sources,
        include_dirs=["ext/include", "ext/simgpu"],
        extra_compile_args=["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden", *opt],
        # -Bsymbolic: a library's own references never bind to a preloaded interposer.
        # The soname is the file name, as the real driver libraries have, so a library loaded
        # by path satisfies a later dlopen("libnvidia-ml.so.1") by name.
        extra_link_args=[
            "-Wl,-Bsymbolic",
            "-Wl,--no-undefined",
            f"-Wl,-soname,{C_LIBRARIES[name.rsplit('.', 1)[-1]]}",
            *link_opt,
        ],
        libraries=["dl", "pthread"],
    )


def extensions() -> list[Extension]:
    opt, link_opt = flavour()
    shm = Extension(
        "tfcore.ipc._shm",
        sources=["ext/shm.pyx"],
        include_dirs=["ext", "ext/include"],
        # Cython's generated C is not ours: warnings stay warnings there.
        extra_compile_args=["-std=gnu11", *opt],
        extra_link_args=link_opt,
    )
    procs = "ext/common/driver_procs.c"
    sim = ["ext/simgpu/sim_config.c"]
    return [
        *cythonize([shm], include_path=["ext"], language_level="3", compiler_directives={"embedsignature": True}),
        c_library("tfcore.native.libtfshim", [*sorted(glob("ext/shim/*.c")), procs]),
        c_library(
            "tfcore.native.sim.libcuda",
            [
                *(
                    f"ext/simgpu/{n}.c"
                    for n in (
                        "simcuda",
                        "sim_ctx",
                        "sim_graph",
                        "sim_mem",
                        "sim_exports",
                        "sim_state",
                        "sim_export_tables",
                        "sim_library",
                        "sim_image",
                        "sim_attrs",
                        "sim_host",
                        "sim_memops",
                        "sim_pointer",
                        "sim_legacy",
                        "sim_limits",
                        "sim_capture",
                    )
                ),
                procs,
                *sim,
            ],
        ),
        c_library("tfcore.native.sim.libnvidia_ml", ["ext/simgpu/simnvml.c", "ext/simgpu/sim_state.c", *sim]),
    ]


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
