"""GPT-2 in PyTorch with gpt-2-simple's architecture and shapes (hparams.json), and its training step.

It needs torch and nothing else (not even the rest of wikiluigi), so that benchmarks/torch_bench.py can load
it by path on a GPU machine that has only torch and measure the very step the torch backend trains with.
Import it inside functions: importing wikiluigi never loads torch. The layers follow gpt-2-simple's
src/model.py: learned positions, pre-norm blocks (layer norm eps 1e-5), tanh GELU, causal attention, the
output projection tied to the token embedding. Linear weights are stored as nn.Linear's [out, in];
gpt-2-simple's conv1d weights are [1, in, out] (wikiluigi.training.backends.torch_convert maps them).
"""
import contextlib
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

HPARAMS = ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer")


class Attention(nn.Module):
    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)

    def forward(self, x, past=None):
        batch, length, width = x.shape
        q, k, v = (t.view(batch, length, self.n_head, width // self.n_head).transpose(1, 2)
                   for t in self.c_attn(x).split(width, dim=2))
        if past is not None:            # sampling: keys and values of the tokens before these
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)
        # Flash or memory-efficient kernels where the device has them. With a past, the new tokens (one at
        # a time when sampling) see every earlier one, so no mask; without, the usual causal mask.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=past is None)
        y = y.transpose(1, 2).contiguous().view(batch, length, width)
        return self.c_proj(y), (k, v)


class MLP(nn.Module):
    def __init__(self, n_embd: int):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, eps=1e-5)
        self.attn = Attention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd, eps=1e-5)
        self.mlp = MLP(n_embd)

    def forward(self, x, past=None):
        a, present = self.attn(self.ln_1(x), past)
        x = x + a
        return x + self.mlp(self.ln_2(x)), present


class GPT2(nn.Module):
    """GPT-2 of the given hparams. `pad_vocab_to` rounds the output projection's width up (64 suits tensor
    cores: 50257 columns are misaligned) with zero rows whose logits are cut off before they are used, so
    the results are those of the exact vocabulary; the weights keep hparams.json's shapes."""

    def __init__(self, hparams: dict, pad_vocab_to: int = 1):
        super().__init__()
        self.hparams = {key: int(hparams[key]) for key in HPARAMS}
        n_vocab, n_ctx, n_embd, n_head, n_layer = (self.hparams[key] for key in HPARAMS)
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head}).")
        self.padded_vocab = -(-n_vocab // pad_vocab_to) * pad_vocab_to
        self.wte = nn.Embedding(n_vocab, n_embd)
        self.wpe = nn.Embedding(n_ctx, n_embd)
        self.h = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, eps=1e-5)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """gpt-2-simple's initialisers: normal(0.02) weights and tokens, normal(0.01) positions, zero biases."""
        for name, param in self.named_parameters():
            if name.endswith("bias"):
                param.zero_()
            elif ".ln_" in name or name.startswith("ln_"):
                param.fill_(1.0)
            else:
                param.normal_(0.0, 0.01 if name == "wpe.weight" else 0.02)

    def forward(self, tokens, past=None, loss: bool = False):
        """Logits [batch, length, n_vocab] for token ids [batch, length], and each block's keys and values;
        with `loss`, the training loss instead (see `loss`), so that DDP and torch.compile wrap the whole step.

        `past` (from an earlier call, when sampling) holds the keys and values of the tokens before these.
        """
        start = 0 if past is None else past[0][0].shape[2]
        positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        x = self.wte(tokens) + self.wpe(positions)
        presents = []
        for i, block in enumerate(self.h):
            x, present = block(x, None if past is None else past[i])
            presents.append(present)
        logits = self.logits(self.ln_f(x))
        if loss:
            # Each position predicts the next; the window goes in whole (shapes stay round) and the last
            # position, which has no next token, is left out of the mean, as in wikiluigi.training.backends.gpt2's loss.
            targets = F.pad(tokens[:, 1:], (0, 1), value=-100)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                                   ignore_index=-100)
        return logits, presents

    def logits(self, x):
        weight = self.wte.weight
        if self.padded_vocab > weight.shape[0]:
            weight = F.pad(weight, (0, 0, 0, self.padded_vocab - weight.shape[0]))
            return F.linear(x, weight)[..., :self.hparams["n_vocab"]]
        return F.linear(x, weight)

    def loss(self, tokens):
        """Mean cross-entropy of each position of the windows [batch, window] predicting the next."""
        return self(tokens, loss=True)


def flops_per_token(hparams: dict, window: int) -> float:
    """Model FLOPs of one training token (forward and backward), as PaLM and nanoGPT count them: 6 per weight
    of every matrix product (the positions table is a lookup, not a product; the token table is also the output
    projection) plus 12 x layers x width x window for attention's two products. Causal attention does about
    half of the latter; the convention counts it whole."""
    n_vocab, n_ctx, n_embd, n_head, n_layer = (int(hparams[key]) for key in HPARAMS)
    matrices = n_vocab * n_embd + n_layer * 12 * n_embd * n_embd
    return 6.0 * matrices + 12.0 * n_layer * n_embd * window


def parameter_count(hparams: dict) -> int:
    n_vocab, n_ctx, n_embd, n_head, n_layer = (int(hparams[key]) for key in HPARAMS)
    block = 12 * n_embd * n_embd + 13 * n_embd      # four matrices with biases, two layer norms
    return n_vocab * n_embd + n_ctx * n_embd + n_layer * block + 2 * n_embd


def adamw(model: nn.Module, learning_rate: float, weight_decay: float = 0.0, fused: bool | None = None):
    """AdamW over the model's weights, fused (one kernel for every tensor) on CUDA. Weight decay, when asked
    for, applies to matrices and embeddings only, never to biases and layer norms."""
    decayed = [p for p in model.parameters() if p.dim() >= 2]
    plain = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decayed, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]
    if fused is None:
        fused = all(p.is_cuda for p in model.parameters())
    return torch.optim.AdamW(groups, lr=learning_rate, betas=(0.9, 0.999), eps=1e-8, fused=fused)


def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({torch.get_num_threads()} threads)"


def distributed() -> tuple[int, int]:
    """(rank, world size) as torchrun sets them; (0, 1) outside torchrun."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def pick_device(device: str = "auto") -> torch.device:
    """`auto`: the GPU if torch sees one (under torchrun, this process's), else the CPU. ValueError if absent."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch {torch.__version__} sees no CUDA GPU here: use "
                         f"'cpu' or 'auto', or install a CUDA build of torch.")
    if device == "cuda":    # an index always: torch.cuda.set_device and DDP's device_ids refuse a bare "cuda"
        local_rank = os.environ.get("LOCAL_RANK")
        device = f"cuda:{int(local_rank) if distributed()[1] > 1 and local_rank else torch.cuda.current_device()}"
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown torch device {device!r} ({exc}): use 'auto', 'cpu', 'cuda' or 'cuda:N'.") from None


class Trainer:
    """A GPT-2 on one device (or one rank of several under torchrun), with its AdamW and its step.

    On a GPU (precision and compile `auto`): bf16 autocast, TF32 for what stays in float32, fused AdamW,
    flash attention through scaled_dot_product_attention, the output width padded to 64, torch.compile.
    On a CPU: float32, not compiled. Under torchrun each process takes its slice of every batch and DDP
    averages the gradients, so a step is the same step whatever the number of processes.
    """

    def __init__(self, hparams: dict, *, learning_rate: float, weight_decay: float = 0.0, device: str = "auto",
                 precision: str = "auto", compile="auto", fused: bool | None = None, seed: int = 1,
                 compile_mode: str | None = None):
        self.rank, self.world = distributed()
        self.device = pick_device(device)
        cuda = self.device.type == "cuda"
        if precision == "auto":
            precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
        if precision not in ("bf16", "fp32"):
            raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', not {precision!r}.")
        self.precision = precision
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.cuda.set_device(self.device)
        torch.manual_seed(seed)
        self.hparams = dict(hparams)
        self.model = GPT2(hparams, pad_vocab_to=64 if cuda else 1).to(self.device)
        self.optimizer = adamw(self.model, learning_rate, weight_decay, fused=fused)
        choices = {"auto": cuda, True: True, "true": True, False: False, "false": False}
        if compile not in choices:
            raise ValueError(f"compile must be 'auto', 'true' or 'false', not {compile!r}.")
        self.compiled = choices[compile]
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if cuda else "gloo")
        # Steps run through `runner`: the model compiled (when asked) and wrapped in DDP (under torchrun);
        # `model` stays the plain module whose weights are saved and sampled.
        runner = torch.compile(self.model, mode=compile_mode) if self.compiled else self.model
        self.ddp = None
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel
            runner = self.ddp = DistributedDataParallel(runner, device_ids=[self.device.index] if cuda else None)
        self.runner = runner

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def _tensor(self, batch):
        return torch.as_tensor(batch, dtype=torch.long).to(self.device, non_blocking=True)

    def rank_slice(self, batch):
        """This process's share of a batch drawn for every process."""
        share = len(batch) // self.world
        return batch[self.rank * share:(self.rank + 1) * share]

    def step(self, batches, learning_rate: float | None = None, clip: float = 0.0) -> float:
        """One optimiser step over `batches` (a list of [batch, window] token arrays whose gradients add up);
        returns the mean loss. `clip` > 0 clips the gradients' global norm."""
        self.model.train()
        if learning_rate is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate
        total = torch.zeros((), device=self.device)
        for i, batch in enumerate(batches):
            # DDP averages gradients across processes once, on the last of the accumulated batches.
            last = i == len(batches) - 1
            quiet = self.ddp.no_sync() if self.ddp is not None and not last else contextlib.nullcontext()
            with quiet:
                with self._autocast():
                    loss = self.runner(self._tensor(self.rank_slice(batch)), loss=True) / len(batches)
                loss.backward()
            total += loss.detach()
        if clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(self._mean_over_processes(total))

    def _mean_over_processes(self, value):
        if self.world > 1:      # SUM, then divide: gloo (CPU) has no AVG
            torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.SUM)
            value = value / self.world
        return value

    @torch.no_grad()
    def evaluate(self, windows, batch_size: int) -> tuple[float, int]:
        """Summed next-token loss over fixed windows ([n, window] tokens) and how many predictions that is,
        without gradients. Under torchrun every process evaluates them all; the mean of their sums is taken,
        so that every process decides alike on the best checkpoint and on stopping."""
        self.model.eval()
        total = torch.zeros((), device=self.device, dtype=torch.float64)
        for start in range(0, len(windows), batch_size):
            chunk = self._tensor(windows[start:start + batch_size])
            with self._autocast():
                total += self.model.loss(chunk).double() * chunk.shape[0] * (chunk.shape[1] - 1)
        return float(self._mean_over_processes(total)), len(windows) * (len(windows[0]) - 1)

    @torch.no_grad()
    def sample(self, context: list[int], length: int, *, batch_size: int = 1, temperature: float = 1.0,
               top_k: int = 0, top_p: float = 0.0, seed: int | None = None) -> list[list[int]]:
        """`batch_size` continuations of `context` (token ids), `length` tokens each."""
        self.model.eval()
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(seed)
        tokens = torch.tensor([list(context)] * batch_size, dtype=torch.long, device=self.device)
        with self._autocast():
            out = sample(self.model, tokens, length, temperature=temperature, top_k=top_k, top_p=top_p,
                         generator=generator)
        return out.tolist()


def top_k_top_p(logits, top_k: int, top_p: float):
    """gpt-2-simple's filters: keep the k likeliest tokens, or (top_p > 0, which wins) the smallest set whose
    probability reaches p; the others get -inf."""
    if top_p > 0.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        before = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1) - torch.softmax(sorted_logits, dim=-1)
        drop = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, before >= top_p)
        return logits.masked_fill(drop, -math.inf)
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, -math.inf)
    return logits


@torch.no_grad()
def sample(model: GPT2, context, length: int, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 0.0,
           generator=None):
    """`length` new tokens after `context` ([batch, n] token ids) for each row, keys and values cached."""
    logits, past = model(context)
    out = []
    for _ in range(length):
        logits = top_k_top_p(logits[:, -1, :].float() / temperature, top_k, top_p)
        token = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)
        out.append(token)
        if len(out) < length:
            logits, past = model(token, past)
    return torch.cat(out, dim=1)
