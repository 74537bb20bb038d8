"""A run's pictures: loss.png (training and validation loss, learning rate) and report.html, one page viewable offline.

Both are drawn from the run folder's files alone (run.json, loss.csv, samples/), so any backend's run gets
them. matplotlib is imported inside the functions, through its Agg canvas (no pyplot, no global backend).
"""
import base64
import html
import json
import math
import os
from pathlib import Path

from wikiluigi.training import runfolder

LOSS_PLOT = "loss.png"
REPORT = "report.html"
SAMPLES_SHOWN = 5


def plot(run_dir) -> Path:
    """Draw loss.csv as loss.png beside it: loss, its running average, validation loss, the best step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    run_dir = Path(run_dir)
    rows = runfolder.read_loss_log(run_dir)
    info = runfolder.read_json(run_dir / runfolder.RUN_INFO) or {}
    figure = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    steps = [row["step"] for row in rows]
    axes.plot(steps, [row["loss"] for row in rows], linewidth=0.8, alpha=0.35, label="training loss")
    axes.plot(steps, [row["avg_loss"] for row in rows], linewidth=1.6, label="training loss, running average")
    validated = [row for row in rows if row.get("val_loss") is not None]
    if validated:
        axes.plot([r["step"] for r in validated], [r["val_loss"] for r in validated], marker="o", markersize=3,
                  linewidth=1.6, label="validation loss")
    best = info.get(runfolder.BEST)
    if best and best.get("val_loss") is not None:
        axes.axvline(best["step"], color="grey", linestyle=":", linewidth=1,
                     label=f"best: step {best['step']}, {best['val_loss']:.3f}")
    axes.set_xlabel("step")
    axes.set_ylabel("cross-entropy (nats per token)")
    axes.set_title(f"{run_dir.name}: loss")
    axes.grid(alpha=0.3)
    if rows and any(row.get("learning_rate") for row in rows):
        rate = axes.twinx()
        rate.plot(steps, [row.get("learning_rate") or 0 for row in rows], color="black", alpha=0.3, linewidth=0.8,
                  linestyle="--")
        rate.set_ylabel("learning rate (dashed)")
    axes.legend(loc="upper right", fontsize="small")
    path = run_dir / LOSS_PLOT
    tmp = run_dir / f".{LOSS_PLOT}.tmp-{os.getpid()}.png"
    figure.savefig(tmp)
    os.replace(tmp, path)
    return path


def _table(rows: list[tuple], header: tuple | None = None) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_text(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _text(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


def write(run_dir, samples: list[str] | None = None, samples_from: str = "") -> Path:
    """Draw loss.png and write report.html: summary, curves (the PNG inside the page), validation losses,
    corpus figures, every setting, and a few samples (`samples`, else those written while training)."""
    run_dir = Path(run_dir)
    plot(run_dir)
    info = runfolder.read_json(run_dir / runfolder.RUN_INFO) or {}
    rows = runfolder.read_loss_log(run_dir)
    picture = base64.b64encode((run_dir / LOSS_PLOT).read_bytes()).decode("ascii")
    latest, best = info.get(runfolder.LATEST) or {}, info.get(runfolder.BEST) or {}
    stats = info.get("corpus_stats") or {}
    last = rows[-1] if rows else {}
    summary = [
        ("base model", (info.get("base_model") or {}).get("name")),
        ("backend", info.get("backend")),
        ("manifests", ", ".join((info.get("corpus") or {}).get("manifests", []))),
        ("latest step", latest.get("step")),
        ("best step", best.get("step")),
        ("best validation loss", best.get("val_loss")),
        ("last training loss (running average)", last.get("avg_loss")),
        ("training time (s)", last.get("elapsed_s")),
        ("stopped early", (info.get("stopped") or {}).get("reason")),
    ]
    validation = [(row["step"], row["loss"], row["avg_loss"], row["val_loss"]) for row in rows
                  if row.get("val_loss") is not None]
    train, held = stats.get("train") or {}, stats.get("validation") or {}
    corpus_rows = [
        ("training pages", train.get("pages")), ("validation pages", held.get("pages")),
        ("training characters", train.get("characters")), ("validation characters", held.get("characters")),
        ("training tokens", stats.get("train_tokens")), ("validation tokens", stats.get("validation_tokens")),
        ("validation windows (count x tokens)", " x ".join(map(str, stats.get("validation_windows") or []))),
        ("validation split", held.get("note")),
    ]
    settings = sorted((info.get("settings") or {}).items())
    if samples is None:
        files = sorted((run_dir / runfolder.SAMPLES).glob("*.txt"), key=lambda p: (p.name.startswith("step"), p.name))
        samples = [p.read_text(encoding="utf-8") for p in files[:SAMPLES_SHOWN]]
        samples_from = samples_from or f"{runfolder.SAMPLES}/ (written at the end of training)"
    shown = "".join(f"<h3>Sample {n}</h3><pre class=sample>{html.escape(text)}</pre>"
                    for n, text in enumerate(samples[:SAMPLES_SHOWN], start=1))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(run_dir.name)}: training run report</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;margin:0.5em 0}}td,th{{border:1px solid #ccc;padding:0.2em 0.6em;text-align:left}}
pre.sample{{white-space:pre-wrap;background:#f6f6f6;padding:0.6em;border-left:3px solid #999}}</style></head>
<body><h1>Run {html.escape(run_dir.name)}</h1>
<section id=summary><h2>Summary</h2>{_table(summary)}</section>
<section id=curves><h2>Loss curves</h2><img id=loss-plot alt="training and validation loss by step"
src="data:image/png;base64,{picture}" width=800></section>
<section id=validation><h2>Validation loss</h2>
{_table(validation, ("step", "loss", "running average", "validation loss"))}</section>
<section id=corpus><h2>Corpus</h2>{_table(corpus_rows)}</section>
<section id=settings><h2>Settings</h2>{_table(settings, ("setting", "value"))}</section>
<section id=samples><h2>Samples</h2><p>From {html.escape(samples_from)}.</p>{shown}</section>
</body></html>
"""
    path = run_dir / REPORT
    runfolder.write_text_atomic(path, page)
    return path
