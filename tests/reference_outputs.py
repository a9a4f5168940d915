"""Write tests/data/reference_outputs.safetensors: what the reference implementation's networks compute, for
small networks with fixed weights, so that CI (which has no checkout of the reference) still checks that ours
compute the same (test_nets.py, test_sincut.py: `pytest -k reference_computed`).

    python tests/reference_outputs.py    # needs the reference mirror (helpers.REFERENCE_REPO)

Each case holds the weights under our state-dict keys (`<case>.w.<key>`), the inputs and the reference's outputs;
`helpers.reference_case_network` builds our side of each case. Only tensors are stored, none of the reference's
code. The side-by-side tests that import the reference (skipped without the mirror) stay the primary check.
"""
from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # cutcore, from a checkout
import torch  # noqa: E402
from helpers import (  # noqa: E402
    REFERENCE_OUTPUTS,
    REFERENCE_REPO,
    import_reference_networks,
    reference_case_network,
    reference_stylegan2_pair,
)
from safetensors.torch import save_file  # noqa: E402
from torch import nn  # noqa: E402


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _fill(module: nn.Module, std: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)


def main() -> None:
    ref = import_reference_networks(Path(tempfile.mkdtemp()))
    torch.Tensor.cuda = lambda self, *a, **k: self  # the reference builds its all-ones style with .cuda()
    norm = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    out: dict[str, torch.Tensor] = {}

    def record(case: str, net: nn.Module, **tensors: torch.Tensor) -> None:
        out.update({f"{case}.w.{k}": v.clone() for k, v in net.state_dict().items()})
        out.update({f"{case}.{k}": v.detach().clone() for k, v in tensors.items()})

    with torch.no_grad():
        for aa in (True, False):
            case = f"resnet_{'aa' if aa else 'plain'}"
            g = reference_case_network(case)
            _fill(g, 0.3, seed=10 + aa)
            r = ref.ResnetGenerator(3, 3, 4, norm_layer=norm, n_blocks=3, no_antialias=not aa, no_antialias_up=not aa)
            r.load_state_dict(g.state_dict(), strict=True)
            x = _randn(2, 3, 20, 28, seed=1)
            feats = r(x, [0, 4, 8, 12], encode_only=True)
            record(case, g, x=x, y=r(x), **{f"feat{i}": f for i, f in enumerate(feats)})

            case = f"patchgan_{'aa' if aa else 'plain'}"
            d = reference_case_network(case)
            _fill(d, 0.2, seed=20 + aa)
            r = ref.NLayerDiscriminator(3, 4, n_layers=3, norm_layer=norm, no_antialias=not aa)
            r.load_state_dict(d.state_dict(), strict=True)
            x = _randn(2, 3, 64, 64, seed=2)
            record(case, d, x=x, y=r(x))

        f = reference_case_network("projector")
        _fill(f, 0.3, seed=30)
        r = ref.PatchSampleF(use_mlp=True, init_type="normal", init_gain=0.02, nc=16)
        feats = [_randn(2, 3, 10, 10, seed=3), _randn(2, 8, 5, 5, seed=4)]
        r.create_mlp(feats)
        r.load_state_dict(f.state_dict(), strict=True)
        ids = [torch.tensor([3, 17, 42, 99, 0]), torch.tensor([24, 1, 7])]
        projected, _ = r(feats, 5, [i.numpy() for i in ids])
        record("projector", f, feat0=feats[0], feat1=feats[1], ids0=ids[0], ids1=ids[1],
               out0=projected[0], out1=projected[1])

        # SinCUT's StyleGAN2 networks, narrow (ngf 1, ndf 1: 16-64 channels) at the paper's 64² crops.
        r_g, r_d, g, d = reference_stylegan2_pair(ngf=1, ndf=1)  # what reference_case_network builds
        x = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(5)) * 2 - 1  # G: any multiple of 2
        torch.manual_seed(1)  # the noise the decoder injects: drawn the same way on both sides
        y, feats = r_g(x, [0, 2, 4])
        torch.manual_seed(1)
        assert torch.allclose(g(x, [0, 2, 4])[0], y, rtol=1e-4, atol=1e-5)
        torch.manual_seed(1)
        noise = torch.empty(1, 1, 32, 40).normal_()  # what NoiseInjection draws first, checked before G is
        record("stylegan_g", g, x=x, y=y, noise=noise, **{f"feat{i}": f for i, f in enumerate(feats)})
        x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(6)) * 2 - 1  # D: its size
        record("stylegan_d", d, x=x, y=r_d(x))

    commit = subprocess.run(["git", "-C", str(REFERENCE_REPO), "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    REFERENCE_OUTPUTS.parent.mkdir(parents=True, exist_ok=True)
    save_file(out, str(REFERENCE_OUTPUTS), {"reference_commit": commit, "torch": torch.__version__})
    print(f"{REFERENCE_OUTPUTS}: {len(out)} tensors, {REFERENCE_OUTPUTS.stat().st_size / 1024:.0f} KiB, "
          f"reference {commit[:10]}")


if __name__ == "__main__":
    main()
