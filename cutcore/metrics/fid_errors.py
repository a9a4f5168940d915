"""Why FID cannot be computed. Apart from `fid.py` so that callers can catch these without importing
pytorch-fid (and torchvision with it: ~2 s of start-up for a command that only scores accuracy)."""


class FIDWeightsUnavailable(RuntimeError):
    """FID cannot be computed here: its Inception weights (or pytorch-fid) could not be found, downloaded or loaded."""


class PytorchFIDMissing(FIDWeightsUnavailable):
    """pytorch-fid itself is not installed (no weights path helps)."""
