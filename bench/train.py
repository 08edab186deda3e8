"""One fine-tune's throughput on the device present: tokens/s, peak memory and model FLOPs utilisation (MFU).

    .venv/bin/python bench/train.py --model data/models/smollm2-135m --tokens 8192 [--lora-rank 16] [--dtype bf16]
        [--block-size 512] [--batch-size 4] [--gradient-accumulation-steps 1] [--gradient-checkpointing] [--compile]

It trains on real Python functions from the standard library with the pipeline's own loop (`engine.training.finetune`),
after one warm-up step's worth of tokens (not timed: CUDA kernels and torch.compile are set up there). Model FLOPs
per token are 6 N + 12 L d T (weights forward and backward, attention scores) for a full fine-tune and 4 N + 12 L d T
for LoRA (the frozen base gets no weight gradients), N the weights of every linear layer and the output head (not the
embedding lookups), L layers of width d, T the block; recomputation under gradient
checkpointing is not counted, as in MFU's definition. Peak FLOP/s: `--peak-tflops`, else the dense bf16/fp16 (or
TF32) figure of a known GPU, else, on a CPU, the float32 matmul rate this machine reaches (a measured ceiling).
Peak memory: CUDA's peak allocation during the timed run, or on a CPU the process's peak resident set during it.
Runs unchanged on a CUDA machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).parent))
from corpus import sources  # noqa: E402

from zipfit_pipeline.engine.core.devices import compute_dtype  # noqa: E402
from zipfit_pipeline.engine.train.loop import finetune  # noqa: E402
from zipfit_pipeline.engine.train.settings import TrainingSettings  # noqa: E402
from zipfit_pipeline.engine.train.trainable import trainable_model  # noqa: E402

# Dense tensor-core peaks (TFLOP/s) of common training GPUs: bf16/fp16, and TF32 for float32 compute.
GPU_PEAKS = {
    "H200": (989.0, 494.0),
    "H100": (989.0, 494.0),
    "A100": (312.0, 156.0),
    "L40S": (362.0, 183.0),
    "A10": (125.0, 62.5),
    "L4": (121.0, 60.0),
}


def matmul_weights(model: torch.nn.Module) -> int:
    """Weights a token meets in matmuls: every linear layer (the output head included, tied or not; a 4-bit layer
    counted by its shape, not its packed storage), not the embedding lookups."""
    total = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            total += module.in_features * module.out_features
        elif type(module).__name__ == "Conv1D":  # GPT-2's transposed linear layers
            total += module.weight.shape[0] * module.weight.shape[1]
    return total


def model_flops_per_token(model: torch.nn.Module, block_size: int, lora: bool) -> float:
    config = model.config  # type: ignore[attr-defined]
    layers = getattr(config, "num_hidden_layers", None) or config.n_layer
    width = getattr(config, "hidden_size", None) or config.n_embd
    return (4 if lora else 6) * matmul_weights(model) + 12 * layers * width * block_size


def peak_flops(device: torch.device, dtype: torch.dtype, given: float | None) -> tuple[float, str]:
    if given:
        return given * 1e12, "given"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, (half, tf32) in GPU_PEAKS.items():
            if key in name:
                return (tf32 if dtype == torch.float32 else half) * 1e12, f"{name} datasheet, dense"
        return float("nan"), f"{name}: unknown peak, pass --peak-tflops"
    a = torch.randn(2048, 2048)
    best = 0.0
    for _ in range(5):
        started = time.perf_counter()
        a @ a
        best = max(best, 2 * 2048**3 / (time.perf_counter() - started))
    return best, "this CPU's measured float32 matmul rate"


class PeakRss:
    """The process's largest resident set while the block runs, sampled every 20 ms (the CPU's peak memory; the
    kernel's own peak would include loading the corpus)."""

    def __enter__(self) -> PeakRss:
        self.peak, self.running = 0, True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        process = psutil.Process()
        while self.running:
            self.peak = max(self.peak, process.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        self.running = False
        self.thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--tokens", type=int, default=8192, help="timed training tokens")
    parser.add_argument("--block-size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--gradient-accumulation-steps", type=int, default=1)
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--lora-rank", type=int)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--peak-tflops", type=float)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    settings = TrainingSettings(
        block_size=args.block_size,
        batch_size=args.batch_size,
        learning_rate=1e-4,
        curve_points=0,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        dtype=args.dtype,
        gradient_checkpointing=args.gradient_checkpointing,
        compile=args.compile,
        lora={"rank": args.lora_rank, "alpha": 2.0 * args.lora_rank} if args.lora_rank else None,
    )
    model, tokenizer = trainable_model(args.model, settings, device)
    texts = sources(n_python=3600, n_c=0, n_prose=0)
    step_tokens = args.block_size * args.batch_size * args.gradient_accumulation_steps
    finetune(model, tokenizer, texts, step_tokens, settings, 1, device, log=lambda _: None)  # warm-up, not timed
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = psutil.Process().memory_info().rss
    with PeakRss() as rss:
        started = time.perf_counter()
        result = finetune(model, tokenizer, texts, args.tokens, settings, 0, device, log=lambda _: None)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
    memory = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else rss.peak
    dtype = compute_dtype(settings.dtype, device)
    peak, source = peak_flops(device, dtype, args.peak_tflops)
    rate = result.train_tokens / seconds
    achieved = rate * model_flops_per_token(model, args.block_size, settings.lora is not None)
    print(
        json.dumps(
            {
                "device": torch.cuda.get_device_name(device)
                if device.type == "cuda"
                else f"cpu, {torch.get_num_threads()} threads",
                "model": args.model,
                "mode": f"lora r{args.lora_rank}" if args.lora_rank else "full",
                "dtype": str(dtype),
                "block_size": args.block_size,
                "batch_size": args.batch_size,
                "accumulation": args.gradient_accumulation_steps,
                "gradient_checkpointing": args.gradient_checkpointing,
                "compile": args.compile,
                "tokens": result.train_tokens,
                "steps": result.steps,
                "seconds": round(seconds, 2),
                "tokens_per_second": round(rate, 1),
                "peak_memory_mb": round(memory / 2**20, 1),
                "memory_kind": "CUDA allocated" if device.type == "cuda" else "process RSS",
                "rss_before_mb": round(rss_before / 2**20, 1),
                "model_tflops_per_second": round(achieved / 1e12, 4),
                "mfu": round(achieved / peak, 4),
                "peak_source": source,
                "final_loss": round(result.final_train_loss, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
