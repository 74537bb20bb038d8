"""Generate: samples of a run's best (or latest) checkpoint, in batches, cut at the end marker, into out/gen/<run>/.

Backend-neutral: the checkpoint's checkpoint.json names the backend that wrote it, and that backend's
`generate_ids` draws the tokens; the context, the cut at a marker and the files are the same for all.
"""
import json
import logging
from pathlib import Path

from wikiluigi.corpus import vocabulary
from wikiluigi.errors import ModelError
from wikiluigi.training import loop as training, runfolder

log = logging.getLogger(__name__)

INDEX = "index.json"
SAMPLE_MEMORY_BUDGET = 1 << 30     # bytes of key/value cache and logits that one batch of samples may take


def auto_batch_size(hparams: dict, nsamples: int) -> int:
    """As many samples at once as fit SAMPLE_MEMORY_BUDGET: each keeps keys and values of every layer for
    the whole window (float32) and a row of logits; at most `nsamples`."""
    per_sample = 4 * (2 * hparams["n_layer"] * hparams["n_ctx"] * hparams["n_embd"] + 2 * hparams["n_vocab"])
    return max(1, min(nsamples, SAMPLE_MEMORY_BUDGET // per_sample))


def generate(run_dir, out_dir, *, checkpoint: str = runfolder.BEST, nsamples: int = 20, length: int | None = None,
             temperature: float = 0.7, top_k: int = 0, top_p: float = 0.0, prefix: str = "", truncate: bool = True,
             seed: int | None = None, batch_size: int = 0, progress=None) -> dict:
    """Write `nsamples` samples of the run's `checkpoint` ('best' or 'latest') to `out_dir`, replaced whole.

    Files: sample-001.txt ... and index.json with the settings as asked, the checkpoint (kind and step),
    the length and batch size used, messages and the file names. A sample starts as a page starts in the
    corpus (after `<|endoftext|>`, and `<|startoftext|>` where the vocabulary has it), then `prefix`. A
    `length` (tokens; default: as many as fit) above n_ctx minus the context is clamped, with a message
    logged and returned. With `truncate`, a sample ends at the first marker the model writes. `batch_size`
    0 draws as many at once as memory allows (auto_batch_size).
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    for name, value in (("nsamples", nsamples),):
        if not isinstance(value, int) or value < 1:
            raise ModelError(f"{name} must be a whole number of at least 1, not {value!r}.")
    if not isinstance(batch_size, int) or batch_size < 0:
        raise ModelError(f"batch_size must be 0 (as many as fit) or more, not {batch_size!r}.")
    if not temperature > 0:
        raise ModelError(f"temperature must be above 0, not {temperature!r}.")
    if not isinstance(top_k, int) or top_k < 0 or not 0.0 <= top_p <= 1.0:
        raise ModelError(f"top_k must be 0 (off) or more and top_p from 0 (off) to 1, not {top_k!r} and {top_p!r}.")
    folder, info, messages = runfolder.checkpoint_folder(run_dir, checkpoint)
    hparams = runfolder.read_hparams(folder)
    n_ctx = hparams["n_ctx"]
    tokenizer = vocabulary.load_tokenizer(folder)
    context = vocabulary.start_context(tokenizer) + (tokenizer.encode(prefix).ids if prefix else [])
    if not context:
        raise ModelError(f"The vocabulary of {run_dir} has no <|endoftext|> to start from: give a prefix.")
    most = n_ctx - len(context)
    if most < 1:
        room = n_ctx - 1 - len(vocabulary.start_context(tokenizer))
        raise ModelError(f"The prefix is {len(context)} tokens with the page start, the model's whole window "
                         f"(n_ctx {n_ctx}): shorten it to at most {room} tokens.")
    settings = {"checkpoint": checkpoint, "nsamples": nsamples, "length": length, "temperature": temperature,
                "top_k": top_k, "top_p": top_p, "prefix": prefix, "truncate": truncate, "seed": seed,
                "batch_size": batch_size}
    if length is None:
        length = most
    elif not isinstance(length, int) or length < 1:
        raise ModelError(f"length must be a number of tokens of at least 1, not {length!r}.")
    elif length > most:
        messages.append(f"length {length} is more than this model can write: its window n_ctx is {n_ctx} tokens "
                        f"and the context takes {len(context)}, so samples are {most} tokens long.")
        log.warning(messages[-1])
        length = most
    batch = batch_size or auto_batch_size(hparams, nsamples)
    backend = training.load_backend(info.get("backend", "tensorflow"))
    rows = backend.generate_ids(folder, hparams, context, nsamples=nsamples, length=length, temperature=temperature,
                                top_k=top_k, top_p=top_p, seed=seed, batch_size=batch, progress=progress)
    texts = [prefix + vocabulary.decode_sample(tokenizer, ids, truncate=truncate, after_prefix=bool(prefix))
             for ids in rows]
    width = max(3, len(str(nsamples)))
    names = [f"sample-{i:0{width}d}.txt" for i in range(1, nsamples + 1)]
    with runfolder.atomic_dir(out_dir) as tmp:
        for name, text in zip(names, texts):
            (tmp / name).write_text(text, encoding="utf-8")
        index = {"run": run_dir.name, "checkpoint": folder.name, "step": info["step"], "val_loss": info.get("val_loss"),
                 "settings": settings, "length": length, "batch_size": batch, "messages": messages,
                 "samples": names}
        (tmp / INDEX).write_text(json.dumps(index, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log.info("Wrote %d samples of run %s (%s, step %d) to %s", nsamples, run_dir.name, folder.name, info["step"],
             out_dir)
    return {**index, "out_dir": str(out_dir), "texts": texts}
