"""Layer-adaptive pruning by rate-distortion (Xu et al., ICCV 2023): curves, allocation, masks.

The two entry points, for any ``nn.Module`` and calibration data as a tensor or a ``DataLoader``:

* :func:`prune_model` (weights): per-layer sparsities by the knapsack DP on distortion curves
  (or a baseline), masks through ``torch.nn.utils.prune``, made permanent;
* :func:`prune_channels` (channels): Torch-Pruning's dependency groups, a distortion curve per
  group, the same DP under a MACs or parameter budget, and a physically smaller module;
* :func:`save_pruned` / :func:`load_pruned`: that smaller module kept as the user's own class.

Both take a within-layer criterion as an object: :class:`Magnitude` (the default) or
:class:`OBS` (the survivors re-fitted by least squares on the calibration data; for channels,
the layers reading the cut channels).
"""

from designer.pruning.criteria import OBS, Magnitude
from designer.pruning.groups import prune_channels
from designer.pruning.prune import prune_model
from designer.pruning.pruned_file import load_pruned, save_pruned

__all__ = ["OBS", "Magnitude", "load_pruned", "prune_channels", "prune_model", "save_pruned"]
