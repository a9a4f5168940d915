"""Train with the reference implementation's own loop, to set a cutcore run beside it on the same data.

A read-only checkout of taesungp/contrastive-unpaired-translation (its models/, options/, data/ and util/;
see scripts/gpu_session.sh for materialising one) is driven through its own option parser, dataset, model
and learning-rate schedule, as its train.py does, minus the visdom/HTML visualiser (which needs packages
cutcore does not install). Its generator is saved after every epoch as <checkpoints_dir>/<name>/<epoch>_net_G.pth,
which `python -m cutcore evaluate --model ...pth` scores as it is. Nothing of the reference is copied.

    python scripts/reference_train.py --reference tmp/reference --stop-epoch 8 -- \\
        --dataroot packs/sat2map_256 --name cut --checkpoints_dir runs/reference --gpu_ids -1 --model cut \\
        --netG resnet_6blocks --ngf 32 --load_size 128 --crop_size 64 --batch_size 8 \\
        --n_epochs 15 --n_epochs_decay 15 --num_threads 0
    python -m cutcore evaluate --model runs/reference/cut/8_net_G.pth --data packs/sat2map_256/heldout \\
        --phase test --size 128 --metrics accuracy,rmse

The reference's CycleGAN runs too (`--model cycle_gan`, with `--no_antialias --no_antialias_up --init_type
normal` for the CycleGAN paper's networks), through the accommodations `cutcore.bench` makes for it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cutcore.bench import reference_options, start_reference_model  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], usage="%(prog)s --reference DIR [...] -- OPTIONS")
    p.add_argument("--reference", type=Path, required=True, help="checkout of the reference CUT repository")
    p.add_argument("--stop-epoch", type=int, default=None, help="stop after this epoch (default: the whole schedule)")
    p.add_argument("--log-every", type=int, default=50, help="print the losses every this many steps")
    args, reference_argv = p.parse_known_args(argv)
    reference_argv = [a for a in reference_argv if a != "--"]
    opt = reference_options(args.reference.resolve(), reference_argv)
    from data import create_dataset  # noqa: E402  (the reference checkout)

    dataset, model, step = create_dataset(opt), None, 0
    last = opt.n_epochs + opt.n_epochs_decay
    for epoch in range(opt.epoch_count, min(last, args.stop_epoch or last) + 1):
        t0 = time.time()
        dataset.set_epoch(epoch)
        for data in dataset:
            if model is None:
                model = start_reference_model(opt, data)
            model.set_input(data)
            model.optimize_parameters()
            step += 1
            if step % args.log_every == 0:
                losses = {k: round(float(v), 4) for k, v in model.get_current_losses().items()}
                print(json.dumps({"epoch": epoch, "step": step, **losses}), flush=True)
        model.save_networks(epoch)
        print(f"epoch {epoch} done in {time.time() - t0:.0f} s", flush=True)
        model.update_learning_rate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
