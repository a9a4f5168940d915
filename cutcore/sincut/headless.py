"""SinCUT without a UI (`python -m cutcore sincut`): train on one photo and one artwork into a run folder.

    python -m cutcore sincut --content etretat_photo.jpg --style monet_painting.jpg --out runs/etretat
    python -m cutcore sincut --data datasets/single_image_monet_etretat --preset sincut --out runs/etretat

The run folder gets the preview sequence (previews/iter_NNNNN.png: the whole content image
translated as training goes), losses.jsonl, and the exported model (model.safetensors +
config.json) that `translate` and the app load; the photo's translation at the working size (full
resolution unless the preset shrinks the images, as sincut-cpu and sincut-gpu do to 512 px, or
--max-side does) goes to translation.png, and its style yardsticks (`cutcore.metrics.style`) to style.json.
Ctrl-C stops after the current iteration and still exports, then exits 130 (as `train` does), so
`sincut ... && next` goes no further with a model cut short. A folder that holds a run is refused.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from tqdm import tqdm

from ..checkpoint import existing_run
from ..imageio import list_images, load_rgb
from ..interrupt import first_ctrl_c_calls
from ..metrics.style import YARDSTICKS, style_report
from .config import sincut_preset, trained_for, with_recipe
from .live import LiveTrainer, TrainEvent


def single_images(data: Path) -> tuple[Path, Path]:
    """The official single-image layout: trainA/ holds the content image, trainB/ the style image."""
    if not data.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {data}")
    found = []
    for domain in "AB":
        folder = data / f"train{domain}"
        if not folder.is_dir():
            raise FileNotFoundError(f"{data} has no train{domain}/ folder (--data wants trainA/ and trainB/ with "
                                    "one image each); for two loose images give --content and --style")
        files = list_images(folder)
        if len(files) != 1:
            raise ValueError(f"{folder}: SinCUT needs exactly one image here, found {len(files)}")
        found.append(files[0])
    return found[0], found[1]


def refuse_existing_run(out: Path) -> None:
    """A second run into the same folder would leave the first one's previews among its own, and its config.json
    would replace the one a model or a training run there is read with."""
    match existing_run(out):
        case ("model", what):
            raise ValueError(f"{out} already holds a SinCUT run or a model ({what}): train into another --out, or "
                             "delete it first")
        case ("training run", what):
            raise ValueError(f"{out} holds a training run ({what}): train into another --out")


def train_to_folder(content: Path, style: Path, out: Path, preset: str = "sincut-cpu", *, iters: int | None = None,
                    preview_every: int = 20, preview_size: int | None = 384, device: str = "auto",
                    precision: str = "fp32", lambda_nce: float | None = None, max_side: int | None = None) -> int:
    """Train SinCUT headless into `out` (previews/, losses.jsonl, the model, translation.png, style.json) and
    return the exit code. `iters`: the preset's schedule laid over that many iterations, all trained (as the
    app's budget); `lambda_nce`, `max_side`: the preset's PatchNCE weight and working size changed (`with_recipe`)."""
    refuse_existing_run(out)  # before building anything: the answer comes at once
    config = with_recipe(sincut_preset(preset), lambda_nce=lambda_nce, max_side=max_side)
    if iters is not None:
        config = trained_for(config, iters)
    trainer = LiveTrainer(content, style, config, event_every=preview_every, preview_size=preview_size,
                          device=device, precision=precision)
    (out / "previews").mkdir(parents=True, exist_ok=True)
    w, h = trainer.content.size
    print(f"training on {trainer.device}: {trainer.precision_note}; content {w}×{h} px", file=sys.stderr)
    bar = tqdm(total=trainer.total, desc=preset, unit="it")
    with open(out / "losses.jsonl", "w") as log:

        def on_event(ev: TrainEvent) -> None:
            if ev.kind != "progress":
                return
            bar.total = ev.total  # a time budget may have re-laid the schedule
            bar.update(ev.iteration - bar.n)
            bar.set_postfix({k: f"{v:.3f}" for k, v in ev.losses.items()})
            log.write(json.dumps({"iteration": ev.iteration, "its_per_sec": ev.its_per_sec, **ev.losses}) + "\n")
            log.flush()
            if ev.preview is not None:
                ev.preview.save(out / "previews" / f"iter_{ev.iteration:05d}.png")

        trainer.on_event = on_event
        # Training runs in this thread (LiveTrainer.run says why). The first Ctrl-C stops after the current
        # iteration (and the model is still exported); a second one interrupts at once.
        with first_ctrl_c_calls(lambda: trainer.stop(timeout=0)):
            last = trainer.run()
    bar.close()
    if last.kind == "error":
        print(f"error: SinCUT training failed at iteration {last.iteration}: {last.message}", file=sys.stderr)
        return 1
    trainer.export(out)
    translation = trainer.translate()
    translation.save(out / "translation.png")
    # The yardsticks the app shows and README's preset table uses, as `python -m cutcore style` computes them.
    scores = style_report(load_rgb(content), load_rgb(style), translation)
    (out / "style.json").write_text(json.dumps(scores, indent=2) + "\n")
    print(f"model: {out} (iteration {trainer.iteration}); previews: {out / 'previews'}")
    print("style: " + ", ".join(f"{k} {scores[k]:.3f}" for k in YARDSTICKS) + f" ({out / 'style.json'})")
    if last.kind == "stopped":  # by Ctrl-C: kept, but not the model that was asked for
        print(f"stopped by Ctrl-C at iteration {trainer.iteration} of {trainer.total}; that model is exported",
              file=sys.stderr)
        return 130
    return 0
