"""RecBole's LightGCN on the plugin's symmetric CSR adjacency (recbole_diffusion.graph): the
same losses, gradients and scores as on RecBole's own COO matrix, to float rounding."""

import warnings

import pytest
import torch

from recbole_diffusion.config import Config
from recbole_diffusion.graph import _RECBOLE_NORM_ADJ, SymmetricAdjacency
from recbole_diffusion.quick_start import build


@pytest.fixture(scope="module")
def lightgcn(tmp_path_factory):
    config = {
        "train_batch_size": 512, "show_progress": False, "seed": 2020, "reproducibility": True, "n_layers": 3,
        "checkpoint_dir": str(tmp_path_factory.mktemp("saved")),
    }
    _, (train_data, _, _), model, _ = build(Config(model="LightGCN", dataset="ml-100k", config_dict=config))
    return model, next(iter(train_data))


def loss_and_gradients(model, batch, adjacency):
    model.norm_adj_matrix = adjacency
    model.zero_grad()
    loss = model.calculate_loss(batch)
    loss.backward()
    return loss.detach(), [parameter.grad.clone() for parameter in model.parameters()]


def test_lightgcn_trains_on_the_symmetric_adjacency(lightgcn):
    model, _ = lightgcn
    assert isinstance(model.norm_adj_matrix, SymmetricAdjacency) and model.norm_adj_matrix.matrix.layout == torch.sparse_csr


def test_the_adjacency_is_built_without_recboles_deprecation_warning(lightgcn):
    model, _ = lightgcn
    warned_always = torch.is_warn_always_enabled()
    torch.set_warn_always(True)  # torch warns once a process: again here, whatever built a LightGCN before
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model.get_norm_adj_mat()
    finally:
        torch.set_warn_always(warned_always)


def test_the_same_loss_gradients_and_scores_as_recboles_matrix(lightgcn):
    model, batch = lightgcn
    ours = model.norm_adj_matrix
    recboles = _RECBOLE_NORM_ADJ(model)
    loss, gradients = loss_and_gradients(model, batch, ours)
    expected_loss, expected_gradients = loss_and_gradients(model, batch, recboles)
    assert torch.allclose(loss, expected_loss, rtol=1e-6)
    assert all(torch.allclose(g, e, rtol=1e-4, atol=1e-9) for g, e in zip(gradients, expected_gradients))
    assert all(g.abs().sum() > 0 for g in gradients)  # both embeddings learn: a zero backward would pass allclose only with zeros
    with torch.no_grad():
        model.norm_adj_matrix = ours
        users, items = model.forward()
        model.norm_adj_matrix = recboles
        expected_users, expected_items = model.forward()
    model.norm_adj_matrix = ours
    assert torch.allclose(users, expected_users, atol=1e-6) and torch.allclose(items, expected_items, atol=1e-6)


def test_a_batch_trains_under_autocast(lightgcn):
    """RecBole's enable_amp on CPU is bf16 autocast, and torch has no bf16 CSR product: the
    propagation runs in float32 there, and the step still learns."""
    model, batch = lightgcn
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.calculate_loss(batch)
    loss.backward()
    gradients = [parameter.grad for parameter in model.parameters()]
    assert torch.isfinite(loss) and all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in gradients)


def test_a_matrix_that_is_not_symmetric_is_refused():
    matrix = torch.sparse_coo_tensor(torch.tensor([[0, 1], [1, 1]]), torch.tensor([1.0, 2.0]), (2, 2), check_invariants=True)
    with pytest.raises(ValueError, match="not symmetric"):
        SymmetricAdjacency.of(matrix)


def test_other_sparse_calls_are_not_taken_over():
    """Only torch.sparse.mm(adjacency, x) is answered; anything else torch refuses as before."""
    adjacency = SymmetricAdjacency.of(torch.eye(3).to_sparse())
    assert torch.equal(torch.sparse.mm(adjacency, torch.ones(3, 2)), torch.ones(3, 2))
    with pytest.raises(TypeError):
        torch.add(adjacency, 1)
