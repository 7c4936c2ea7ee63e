"""Mixed precision: RecBole's ``enable_amp`` (bf16 autocast on CPU, fp16 on CUDA) for every plugin model."""

import pytest
import torch

from recbole_diffusion.model.sequential_recommender.dreamrec import HistoryEncoder
from recbole_diffusion.quick_start import run_recbole_diffusion

SMALL = {
    "DiffRec": {},
    "TDiffRec": {},
    "LDiffRec": {"in_dims": [8], "n_cate": 2},
    "LTDiffRec": {"in_dims": [8], "n_cate": 2},
    "DreamRec": {"MAX_ITEM_LIST_LENGTH": 5, "embedding_size": 8},
    "HPMN": {},  # conftest's small_hpmn
}


@pytest.mark.parametrize("model", sorted(SMALL))
def test_every_model_trains_and_evaluates_under_autocast(model, tiny_config, small_hpmn):
    """On CPU RecBole's enable_amp is bf16 autocast: the step runs in bf16 where torch allows it."""
    own = small_hpmn if model == "HPMN" else SMALL[model]
    result = run_recbole_diffusion(model=model, dataset="ml-100k", config_dict=tiny_config(enable_amp=True, **own))
    values = list(result["test_result"].values())
    assert values and all(0.0 <= value <= 1.0 for value in values)


def test_dreamrec_attention_mask_survives_half_precision():
    """An empty history (every key masked) attends uniformly instead of overflowing to NaN."""
    torch.manual_seed(0)
    encoder = HistoryEncoder(8, 4, 1, 0.0).eval()
    items = torch.randn(2, 4, 8)
    mask = torch.tensor([[True, True, False, False], [False, False, False, False]])
    lengths = torch.tensor([2, 0])
    full = encoder(items, mask, lengths)
    with torch.autocast("cpu", dtype=torch.float16):  # the attention scores are fp16, as on CUDA
        half = encoder(items, mask, lengths)
    assert torch.isfinite(half).all()
    torch.testing.assert_close(half.float(), full, atol=2e-2, rtol=2e-2)
