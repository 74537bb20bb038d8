"""Training speed of the torch backend: tokens/s, MFU and peak memory for GPT-2 shapes, against a baseline.

Run by hand (not a test), one command, random weights and random tokens, nothing downloaded:

    python benchmarks/torch_bench.py              # a GPU if torch sees one, else the CPU plan
    python benchmarks/torch_bench.py --quick      # GPU: the seed's setting, 124M and 355M at one batch each
    python benchmarks/torch_bench.py --device cpu # CPU: torch against the TensorFlow loop, same shapes

On a GPU it needs only torch: it loads wikiluigi/torch_model.py by its path (not the wikiluigi package,
which needs Luigi), and measures torch_model.Trainer.step, the step the torch backend trains with. The
baseline there is the seed project's setting (124M, batch 1, window 256, float32, eager, plain AdamW); the
others use bf16 autocast, torch.compile, fused AdamW and flash attention. On a CPU the baseline is the
TensorFlow backend's step (wikiluigi.training.backends.gpt2.TensorFlowModel, gpt-2-simple's graph) on the same shapes, batches
and settings (Adam, gradient clipping at 1.0), which needs the package and TensorFlow installed.

"vs base" compares tokens/s (wall clock); "CPU vs" compares the CPU seconds of a step (the process's, every
thread), the steadier figure on a machine shared with other work. Each setting runs in a process of its own (so that its peak memory is its own and an out-of-memory error
ends only it): warm-up steps first (torch.compile compiles then), then timed steps. MFU is model FLOPs per
token (torch_model.flops_per_token: 6 x matrix weights + attention, the PaLM/nanoGPT count) x tokens/s over
the device's peak dense bf16 FLOP/s, looked up by the device's name (PEAK_BF16_TFLOPS; --peak-tflops for
others). "warm-up s" is the warm-up steps' time, torch.compile's included. Peak memory: torch.cuda.max_memory_allocated on a GPU, the process's peak RSS on a CPU.
"""
import argparse
import importlib.util
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SHAPES = {    # n_vocab, n_ctx, n_embd, n_head, n_layer
    "124M": {"n_vocab": 50257, "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12},
    "355M": {"n_vocab": 50257, "n_ctx": 1024, "n_embd": 1024, "n_head": 16, "n_layer": 24},
    "scratch": {"n_vocab": 8192, "n_ctx": 256, "n_embd": 256, "n_head": 4, "n_layer": 4},   # BaseModel's default
}

# Dense (not sparse) bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s. Matched in order against
# torch.cuda.get_device_name(): the more specific names first.
PEAK_BF16_TFLOPS = (
    ("GH200", 989.0), ("H200 NVL", 835.0), ("H200", 989.0), ("H100 NVL", 835.0), ("H100 PCIe", 756.0),
    ("H100", 989.0),        # "NVIDIA H100 80GB HBM3": the SXM part
    ("H800 PCIe", 756.0), ("H800", 989.0), ("B200", 2250.0), ("B100", 1750.0),
    ("A100", 312.0), ("A800", 312.0), ("A30", 165.0), ("A10G", 70.0), ("A10", 125.0),
    ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("RTX 6000 Ada", 364.0), ("A6000", 155.0),
    ("RTX 4090", 165.0), ("RTX 3090", 71.0),
)

GPU_PLAN = [   # shape, batch, window, precision, compile, fused: the first is the baseline
    ("124M", 1, 256, "fp32", False, False),     # the seed project's setting
    ("124M", 16, 1024, "bf16", False, True),    # what compiling adds
    ("124M", 16, 1024, "bf16", True, True),
    ("124M", 32, 1024, "bf16", True, True),
    ("124M", 64, 512, "bf16", True, True),
    ("355M", 8, 1024, "bf16", True, True),
    ("355M", 16, 1024, "bf16", True, True),
]
GPU_QUICK = [GPU_PLAN[0], GPU_PLAN[2], GPU_PLAN[5]]
CPU_PLAN = [   # shape, batch, window, steps, also compiled: torch and TensorFlow each
    ("scratch", 4, 256, 10, True),
    ("scratch", 16, 256, 5, False),
    ("124M", 1, 256, 3, False),
    ("124M", 1, 1024, 2, False),       # TensorFlow takes 19 GB at 4 x 1024: more than a small machine has
]


def load_torch_model():
    """wikiluigi/torch_model.py by its path: torch alone, no wikiluigi package (Luigi) needed."""
    spec = importlib.util.spec_from_file_location("torch_model", ROOT / "wikiluigi" / "torch_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def peak_tflops(name: str) -> float | None:
    if "MIG" in name:       # a slice of a GPU: its share of the peak is not its name's
        return None
    return next((tflops for pattern, tflops in PEAK_BF16_TFLOPS if pattern in name), None)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------ one setting, measured
def measure_torch(job: dict) -> dict:
    import torch
    tm = load_torch_model()
    hparams = SHAPES[job["shape"]]
    trainer = tm.Trainer(hparams, learning_rate=1e-4, device=job["device"], precision=job["precision"],
                         compile=job["compile"], fused=job["fused"] if job["device"] != "cpu" else False,
                         compile_mode=job.get("compile_mode"))
    cuda = trainer.device.type == "cuda"
    generator = torch.Generator(device=trainer.device).manual_seed(1)

    def batch():
        return [torch.randint(0, hparams["n_vocab"], (job["batch"], job["window"]), device=trainer.device,
                              generator=generator)]

    def sync():
        if cuda:
            torch.cuda.synchronize()

    started = time.perf_counter()
    for _ in range(job["warmup"]):
        first_loss = trainer.step(batch(), clip=1.0)
    sync()
    warmup_s = time.perf_counter() - started
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    began, cpu_began = time.perf_counter(), time.process_time()
    for _ in range(job["steps"]):
        loss = trainer.step(batch(), clip=1.0)     # returns the loss as a float: a sync a step, as in training
    sync()
    seconds = time.perf_counter() - began
    tokens_per_s = job["steps"] * job["batch"] * job["window"] / seconds
    name = tm.device_name(trainer.device)
    peak = job.get("peak_tflops") or (peak_tflops(name) if cuda else None)
    flops = tm.flops_per_token(hparams, job["window"])
    return {"tokens_per_s": tokens_per_s, "ms_per_step": 1000 * seconds / job["steps"],
            "cpu_s_per_step": (time.process_time() - cpu_began) / job["steps"], "warmup_s": warmup_s,
            "mfu": flops * tokens_per_s / (peak * 1e12) if peak else None, "device": name, "peak_tflops": peak,
            "peak_mem_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mib(),
            "first_loss": first_loss, "last_loss": loss, "precision": trainer.precision, "compiled": trainer.compiled,
            "params": tm.parameter_count(hparams), "flops_per_token": flops}


def measure_tensorflow(job: dict) -> dict:
    """The TensorFlow backend's step (gpt-2-simple's graph, as Train --backend tensorflow runs it)."""
    import numpy as np
    sys.path.insert(0, str(ROOT))
    from wikiluigi.training.backends import gpt2
    from wikiluigi.training import loop as training
    hparams = SHAPES[job["shape"]]
    settings = training.Settings(steps=job["steps"], batch_size=job["batch"], window=job["window"],
                                 learning_rate=1e-4, grad_clip=1.0).resolved(hparams["n_ctx"])
    model = gpt2.TensorFlowModel(hparams, settings)
    rng = np.random.default_rng(1)

    def batch():
        return [rng.integers(0, hparams["n_vocab"], (job["batch"], job["window"]), dtype=np.int32)]

    started = time.perf_counter()
    for _ in range(job["warmup"]):
        first_loss = model.step(batch(), 1e-4)
    warmup_s = time.perf_counter() - started
    began, cpu_began = time.perf_counter(), time.process_time()
    for _ in range(job["steps"]):
        loss = model.step(batch(), 1e-4)
    seconds = time.perf_counter() - began
    model.close()
    tm = load_torch_model()    # for the FLOP count: the same formula
    return {"tokens_per_s": job["steps"] * job["batch"] * job["window"] / seconds,
            "ms_per_step": 1000 * seconds / job["steps"],
            "cpu_s_per_step": (time.process_time() - cpu_began) / job["steps"], "warmup_s": warmup_s, "mfu": None,
            "device": "cpu (TensorFlow)", "peak_mem_mib": peak_rss_mib(), "first_loss": first_loss,
            "last_loss": loss, "precision": "fp32", "compiled": "graph", "params": tm.parameter_count(hparams),
            "flops_per_token": tm.flops_per_token(hparams, job["window"])}


def run_job(job: dict, timeout: float) -> dict:
    """One setting in a fresh process; its result, or what went wrong (out of memory, timeout, a crash)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--job", json.dumps(job)]
    # OpenMP threads that spin while they wait (torch's default) burn the CPU a loaded machine's other
    # processes need: measured here with 2 cores under load, torch's CPU seconds a step went from 2.1 to 0.5.
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    lines = (done.stderr + done.stdout).strip().splitlines()
    if any("OutOfMemory" in line or "out of memory" in line for line in lines) or done.returncode in (-9, 137):
        return {"error": f"out of memory (exit {done.returncode})"}
    errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception)\b", line)]
    return {"error": (errors or [f"exit {done.returncode}"])[-1][:200]}


# ------------------------------------------------------------------------------------------------ tables
def row_text(label: str, job: dict, result: dict, baseline: dict | None) -> str:
    setting = f"{job['shape']:<8}{job['batch']:>4} x {job['window']:<5}"
    if "error" in result:
        return f"{label:<11}{setting}  {result['error']}"
    mfu = f"{100 * result['mfu']:5.1f}%" if result.get("mfu") is not None else "   n/a"
    ratio = ""
    if baseline and "error" not in baseline:
        ratio = f"{result['tokens_per_s'] / baseline['tokens_per_s']:8.2f}x"
    mode = f"{result['precision']} {'compiled' if result['compiled'] is True else 'eager' if result['compiled'] is False else result['compiled']}"
    cpu_ratio = ""
    if baseline and "error" not in baseline and job["device"] == "cpu":
        cpu_ratio = f"{baseline['cpu_s_per_step'] / result['cpu_s_per_step']:8.2f}x"
    return (f"{label:<11}{setting}  {mode:<14}{result['tokens_per_s']:>12,.0f}{result['ms_per_step']:>11,.1f}"
            f"{result['cpu_s_per_step']:>10,.2f}{result['warmup_s']:>10,.1f}{mfu:>8}{result['peak_mem_mib']:>11,.0f}"
            f"{ratio:>10}{cpu_ratio:>10}"
            f"   loss {result['first_loss']:.2f}->{result['last_loss']:.2f}")


HEADER = (f"{'':<11}{'shape':<8}{'batch x win':<14}{'mode':<14}{'tokens/s':>12}{'ms/step':>11}{'CPU s/st':>10}"
          f"{'warm-up s':>10}{'MFU':>8}{'peak MiB':>11}{'vs base':>10}{'CPU vs':>10}")


def gpu_main(args) -> None:
    import torch
    tm = load_torch_model()
    name = tm.device_name(torch.device("cuda"))
    peak = args.peak_tflops or peak_tflops(name)
    print(f"device: {name}; peak dense bf16 {peak or '?'} TFLOP/s"
          + ("" if peak else " (unknown name: pass --peak-tflops for MFU)") + f"; torch {torch.__version__}")
    print(f"timed steps {args.steps} after {args.warmup} warm-up steps; baseline: the seed's setting (first row)")
    print(HEADER)
    baseline = None
    for shape, batch, window, precision, compiled, fused in (GPU_QUICK if args.quick else GPU_PLAN):
        if args.shapes and shape not in args.shapes:
            continue
        job = {"backend": "torch", "shape": shape, "batch": batch, "window": window, "precision": precision,
               "compile": compiled, "fused": fused, "device": "cuda", "steps": args.steps,
               "warmup": args.warmup, "peak_tflops": args.peak_tflops,
               "compile_mode": args.compile_mode if compiled else None}
        result = run_job(job, args.timeout)
        baseline = baseline or result
        print(row_text("torch", job, result, baseline), flush=True)
        report(args, job, result)


def cpu_main(args) -> None:
    import torch
    print(f"device: cpu, {torch.get_num_threads()} threads; torch {torch.__version__}; float32 both, "
          f"batches of random tokens; baseline: TensorFlow (gpt-2-simple's graph) on the same setting")
    print(HEADER)
    for shape, batch, window, steps, compiled_too in CPU_PLAN:
        if args.shapes and shape not in args.shapes:
            continue
        steps = args.steps if args.steps_given else steps
        common = {"shape": shape, "batch": batch, "window": window, "device": "cpu", "steps": steps,
                  "warmup": 1 if not args.warmup_given else args.warmup}
        jobs = [] if args.no_tf else [("tensorflow", {**common, "backend": "tensorflow"})]
        jobs.append(("torch", {**common, "backend": "torch", "precision": "fp32", "compile": False, "fused": False}))
        if compiled_too:     # torch.compile on the CPU (inductor's C++): whether it pays there
            jobs.append(("torch", {**common, "backend": "torch", "precision": "fp32", "compile": True, "fused": False,
                                   "warmup": max(2, common["warmup"])}))
        baseline = None
        for label, job in jobs:
            result = run_job(job, args.timeout)
            baseline = baseline or result
            print(row_text(label, job, result, baseline), flush=True)
            report(args, job, result)


def report(args, job: dict, result: dict) -> None:
    if args.json:
        with open(args.json, "a", encoding="utf-8") as f:
            f.write(json.dumps({"job": job, "result": result}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--quick", action="store_true", help="GPU: three settings instead of the whole plan")
    parser.add_argument("--shapes", nargs="*", choices=sorted(SHAPES), help="only these shapes")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (GPU default 20; CPU: per setting)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (GPU default 3, CPU 1)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak dense bf16 TFLOP/s")
    parser.add_argument("--timeout", type=float, default=600, help="seconds one setting may take")
    parser.add_argument("--compile-mode", default=None, help="GPU: torch.compile's mode for the compiled settings, "
                                                             "e.g. max-autotune-no-cudagraphs (minutes to compile)")
    parser.add_argument("--no-tf", action="store_true", help="CPU: leave out the TensorFlow baseline")
    parser.add_argument("--json", help="append each setting's figures to this JSON Lines file")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        job = json.loads(args.job)
        result = measure_tensorflow(job) if job["backend"] == "tensorflow" else measure_torch(job)
        print("RESULT " + json.dumps(result), flush=True)
        return
    import torch
    args.steps_given, args.warmup_given = args.steps is not None, args.warmup is not None
    cuda = torch.cuda.is_available() if args.device == "auto" else args.device == "cuda"
    if cuda:
        args.steps, args.warmup = args.steps or 20, args.warmup if args.warmup is not None else 3
        gpu_main(args)
    else:
        args.warmup = args.warmup if args.warmup is not None else 1
        cpu_main(args)


if __name__ == "__main__":
    main()
