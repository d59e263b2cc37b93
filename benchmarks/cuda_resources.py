"""What each cuda kernel variant costs in registers, stack (local memory) and shared memory, from
the real compiler, on a machine WITHOUT a GPU.

    pip install 'numba-cuda[cu12]'     # numba's CUDA target with NVVM and ptxas (no driver needed)
    python benchmarks/cuda_resources.py [--cc 9.0] [--out benchmarks/CUDA_RESOURCES.md] [--quick]

Each variant of :mod:`srml.backends.cuda_kernels` is compiled to PTX by numba's CUDA target
(``cuda.compile_ptx``, for compute capability ``--cc``) and assembled by ``ptxas -v``, which
reports registers per thread, stack frame (local memory) and static shared memory: the same
figures numba's ``get_regs_per_thread`` / ``get_local_mem_per_thread`` /
``get_shared_mem_per_block`` give on a card (``benchmarks/gpu.py`` prints those there). It
also proves that the real CUDA target compiles every variant (the test suite runs them on
the simulator, which executes Python). Networks: the peers' workload (d_in 8, no episode
flag) and srml's default CartPole network.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["NUMBA_ENABLE_CUDASIM"] = "0"

ROOT = Path(__file__).resolve().parents[1]


def find_ptxas() -> str | None:
    try:
        import nvidia.cuda_nvcc as n  # the nvcc wheel numba-cuda[cu12] installs

        p = Path(next(iter(n.__path__))) / "bin" / "ptxas"
        if p.exists():
            return str(p)
    except Exception:
        pass
    return shutil.which("ptxas")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cc", default="9.0", help="compute capability (9.0: H100/H200)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "CUDA_RESOURCES.md")
    ap.add_argument("--quick", action="store_true", help="two variants, one network (a test)")
    args = ap.parse_args()
    cc = tuple(int(x) for x in args.cc.split("."))
    ptxas = find_ptxas()
    if ptxas is None:
        print("cuda_resources.py: ptxas not found: pip install 'numba-cuda[cu12]'", file=sys.stderr)
        return 2
    import numba.cuda.dispatcher as dispatcher
    from numba import cuda
    from numba import types as T

    from srml.backends.cuda_kernels import Variant, generation_kernel, shared_bytes
    from srml.config import Config
    from srml.kernels import NetSpec
    from srml.task import make_task

    class Device:  # device functions compile for "the current device": name one, no driver
        compute_capability = cc

    dispatcher.get_current_device = lambda: Device()
    sig = (T.float32[:, ::1], T.uint64[::1], T.int64, T.boolean, T.boolean, T.boolean,
           T.float32[:, :, ::1], T.float64[:, ::1], T.boolean[:, ::1], T.float64[::1],
           T.int64[::1], T.boolean[::1], T.int64)  # fmt: skip
    variants = [
        ("rows (original)", Variant("rows", 64, "local", False, div="plain")),
        ("coalesced", Variant("coalesced", 64)),
        ("shared 32 (default)", Variant("shared", 32)),
        ("shared 32, plain division", Variant("shared", 32, div="plain")),
        ("shared 32, rows in shared memory", Variant("shared", 32, smem="rows")),
        ("shared 64", Variant("shared", 64)),
        ("shared 32, not lean", Variant("shared", 32, lean=False)),
        ("shared 32, shared scratch", Variant("shared", 32, "shared")),
    ]
    nets = [("peers' workload (d_in 8, G 152)", dict(episode_flag=False)),
            ("srml default CartPole (d_in 9, G 189)", {})]  # fmt: skip
    if args.quick:
        variants, nets = [variants[0], variants[2]], nets[:1]
    lines = [
        f"# cuda kernel resources from the compiler (sm_{cc[0]}{cc[1]}, no GPU)",
        "",
        f"Made by `python benchmarks/cuda_resources.py --cc {args.cc}` on "
        f"{time.strftime('%Y-%m-%d')}: numba's CUDA target compiled each variant to PTX and "
        "`ptxas -v` assembled it. Stack is local memory per thread (it includes 40 B of "
        "libdevice's double-precision trig slow path, taken only for huge angles); smem is the "
        "block's static shared memory.",
        "",
    ]
    rx = re.compile(
        r"Used (\d+) registers.*?(\d+) bytes cumulative stack size(?:, (\d+) bytes smem)?"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for net, kw in nets:
            task = make_task(Config(env="CartPole-v1", batch=4, pool_size=4, **kw))
            spec, G = NetSpec.of(task.layout, task.codec), task.layout.size
            lines += [f"## {net}", "", "| variant | registers | stack B | smem B | compile s |",
                      "|---|---|---|---|---|"]  # fmt: skip
            for name, v in variants:
                if shared_bytes(spec, task.twin, v, G) > 48 * 1024:
                    lines.append(f"| {name} | (does not fit: the backend falls back) | | | |")
                    continue
                t = time.perf_counter()
                k = generation_kernel(spec, task.twin, G, v)
                ptx, _ = cuda.compile_ptx(k.py_func, sig, cc=cc)
                src = Path(tmp) / "k.ptx"
                src.write_text(ptx)
                p = subprocess.run(
                    [ptxas, "-v", f"--gpu-name=sm_{cc[0]}{cc[1]}", "-O3", str(src), "-o",
                     str(Path(tmp) / "k.cubin")], capture_output=True, text=True,
                )  # fmt: skip
                took = time.perf_counter() - t
                m = rx.search(p.stderr.replace("\n", " "))
                if p.returncode or not m:
                    lines.append(f"| {name} | ptxas failed: {p.stderr.strip()[-200:]} | | | |")
                else:
                    regs, stack, smem = m.group(1), m.group(2), m.group(3) or "0"
                    lines.append(f"| {name} | {regs} | {stack} | {smem} | {took:.1f} |")
                print(lines[-1], flush=True)
            lines.append("")
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
