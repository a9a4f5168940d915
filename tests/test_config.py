"""RunConfig.validate: values that cannot train are refused up front, naming the field and its flag."""
from __future__ import annotations

import re

import pytest
import torch

from cutcore.config import PRESETS, config_field, preset
from cutcore.nets import ResnetGenerator, ResnetGeneratorConfig
from cutcore.nets.patchgan import PatchGANConfig, PatchGANDiscriminator


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_valid(name):
    preset(name).validate()


@pytest.mark.parametrize("path, value", [("runtime.data_on_device", True), ("runtime.data_on_device", False),
                                         ("runtime.channels_last", True), ("runtime.channels_last", "off")])
def test_run_time_switches_take_booleans_as_well(path, value):
    """What older runs saved (`"data_on_device": true`) must still validate, or they could not be resumed."""
    cfg = preset("cut")
    target, name = config_field(cfg, path)
    setattr(target, name, value)
    cfg.validate()


@pytest.mark.parametrize("path, value, message", [
    ("data.crop_size", 0, r"^data.crop_size \(--crop-size\) must be at least 24"),
    ("data.crop_size", 7, r"^data.crop_size \(--crop-size\) must be a multiple of 4"),
    ("data.crop_size", 20, r"^data.crop_size \(--crop-size\) must be at least 24 .*, got 20$"),
    ("data.load_size", 30000,
     r"^data.load_size \(--load-size\) 30000 is over 8192: .*30000x30000 in memory \(2.5 GiB each\)"),
    ("train.batch_size", 0, r"^train.batch_size \(--batch-size\) must be at least 1, got 0$"),
    ("model.generator.ngf", 0, r"^model.generator.ngf \(--ngf\) must be at least 1"),
    ("model.discriminator.ndf", 0, r"^model.discriminator.ndf \(--ndf\) must be at least 1"),
    ("model.generator.n_blocks", -1, r"^model.generator.n_blocks \(--n-blocks\) must be at least 0"),
    ("model.num_patches", 0, r"^model.num_patches \(--num-patches\) must be at least 1"),
    ("train.epochs", -1, r"^train.epochs \(--epochs\) must be at least 0"),
    ("runtime.save_every", 0, r"^runtime.save_every \(--save-every\) must be at least 1"),
    ("runtime.log_every", 0, r"^runtime.log_every \(--log-every\) must be at least 1"),
    ("data.max_items", 0,
     r"^data.max_items \(--max-items\) must be at least 1 \(leave it out for every image\), got 0$"),  # was: no limit
    # What Python callers can set and the command line's choices never let through: each trained silently.
    ("data.direction", "AB", r"^data.direction must be one of 'AtoB', 'BtoA', got 'AB'$"),  # as AtoB
    ("model.nce.loss", "fcal", r"^model.nce.loss must be one of 'ce', 'focal', got 'fcal'$"),
    ("data.exclude", "0.png", r"^data.exclude is a list of file names, got the string '0.png'$"),  # held out none
])
def test_values_that_cannot_train_name_their_field_and_flag(path, value, message):
    cfg = preset("cut")
    target, name = config_field(cfg, path)
    setattr(target, name, value)
    with pytest.raises(ValueError, match=message) as refused:
        cfg.validate()
    assert set(re.findall(r"\((--[a-z-]+)\)", str(refused.value))) <= _train_flags()  # each a real flag


def _train_flags() -> set[str]:
    import argparse

    from cutcore.cli import train

    sub = argparse.ArgumentParser().add_subparsers()
    train.add_train(sub)
    return set(sub.choices["train"]._option_string_actions)


def test_a_schedule_of_no_epochs_is_refused():
    cfg = preset("cyclegan")
    cfg.train.epochs, cfg.train.epochs_decay = 0, 0
    with pytest.raises(ValueError, match=r"^train.epochs \(--epochs\) plus train.epochs_decay \(--epochs-decay\) "
                                         r"must be at least 1 epoch, got 0 \+ 0$"):
        cfg.validate()
    cfg.train.epochs_decay = 1
    cfg.validate()


@pytest.mark.parametrize("antialias", [True, False], ids=["cut", "cyclegan"])
@pytest.mark.parametrize("n_layers", [2, 3])
def test_the_smallest_crop_allowed_is_the_smallest_the_networks_train_on(antialias, n_layers):
    """validate's bounds are the networks' own: the smallest crop it accepts goes through G and D in
    training mode at its size; the multiple of 4 below, and a side that is no multiple, do not."""
    cfg = preset("cut" if antialias else "cyclegan")
    cfg.model.discriminator.n_layers = n_layers
    smallest = next(c for c in range(4, 200, 4) if _accepts(cfg, c))
    g = ResnetGenerator(ResnetGeneratorConfig(ngf=1, n_blocks=1, antialias_down=antialias, antialias_up=antialias))
    d = PatchGANDiscriminator(PatchGANConfig(ndf=1, n_layers=n_layers, antialias=antialias))
    assert _trains(g.train(), d.train(), smallest)
    assert not _trains(g, d, smallest - 4)
    assert not _accepts(cfg, smallest + 3) and not _trains(g, d, smallest + 3)


def _accepts(cfg, crop: int) -> bool:
    cfg.data.crop_size = crop
    try:
        cfg.validate()
    except ValueError:
        return False
    return True


def _trains(g, d, crop: int) -> bool:
    x = torch.zeros(2, 3, crop, crop)
    try:
        y = g(x)
        d(y)
    except (RuntimeError, ValueError):
        return False
    return y.shape == x.shape


def test_nce_layers_the_generator_lacks_are_refused():
    """Layer 99 of a 32-layer generator was skipped: PatchNCE ran on the layers that exist, without a word."""
    from cutcore.models import build_model
    from cutcore.sincut import sincut_preset
    from cutcore.sincut.model import SinCUTModel

    cfg = preset("cut")
    cfg.model.nce_layers = [0, 4, 99]
    with pytest.raises(ValueError, match=r"^nce_layers \[0, 4, 99\]: the layers of this generator PatchNCE can read "
                                         r"are 0-31$"):
        build_model(cfg.model)
    sincut = sincut_preset("sincut")
    sincut.model.nce_layers = [-1, 2]
    with pytest.raises(ValueError, match=r"^nce_layers \[-1, 2\]: .* are 0-5$"):
        SinCUTModel(sincut.model)
