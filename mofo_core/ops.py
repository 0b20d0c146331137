"""The `operations` seam: which Linear / LayerNorm classes the model is built from.

`mofo_core` builds every weight-bearing layer as `operations.Linear(...)`. The default is plain
`torch.nn`; ComfyUI passes `comfy.ops.manual_cast` (or another `comfy.ops` namespace) so its model
manager can stream, cast and partially load the weights. Any namespace with `Linear` and `LayerNorm`
classes taking torch's constructor arguments (plus `dtype=` / `device=`) works.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

torch_ops = SimpleNamespace(Linear=torch.nn.Linear, LayerNorm=torch.nn.LayerNorm)
