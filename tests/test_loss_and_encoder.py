import numpy as np
import pytest
import torch

from hraml_core.encoder import MLPEncoder
from hraml_core.loss import alignment_loss, hraml_objective, l2_penalty, pairwise_sq_dists


def test_alignment_loss_is_a_quarter_of_the_squared_error_sum():
    d2 = torch.tensor([1.0, 0.5, 3.0])
    g = torch.tensor([2.0, 0.0, 2.0])
    # (1-2)^2 + (0.5-0)^2 + (3-2)^2 = 1 + 0.25 + 1 = 2.25; / 4 = 0.5625
    assert float(alignment_loss(d2, g)) == pytest.approx(0.5625)
    assert float(alignment_loss(d2, g, "mean")) == pytest.approx(0.5625 / 3)
    with pytest.raises(ValueError, match="same shape"):
        alignment_loss(d2, g[:2])
    with pytest.raises(ValueError, match="reduction"):
        alignment_loss(d2, g, "max")


def test_objective_adds_lambda_times_all_squared_weights_and_biases():
    enc = MLPEncoder(2, (3,), 2)
    with torch.no_grad():
        for p in enc.parameters():
            p.fill_(0.5)
    # weights 2x3 + 3x2 = 12 entries, biases 3 + 2 = 5: 17 * 0.25 = 4.25
    assert float(l2_penalty(enc).detach()) == pytest.approx(4.25)
    d2, g = torch.tensor([1.0]), torch.tensor([0.0])
    assert float(hraml_objective(d2, g, enc, 0.1).detach()) == pytest.approx(0.25 + 0.425)


def test_pairwise_sq_dists_matches_definition():
    Z = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.6, 0.8]])
    A = pairwise_sq_dists(Z)
    assert A[0, 1] == pytest.approx(2.0)
    assert A[0, 2] == pytest.approx(0.36 + 0.04)
    assert torch.allclose(A, A.T)


def test_encoder_output_is_unit_norm_and_paper_init():
    gen = torch.Generator().manual_seed(0)
    enc = MLPEncoder(10, (32, 16), 8, generator=gen)
    for layer in enc.layers:
        assert layer.weight.abs().max() <= 0.2
        assert torch.all(layer.bias == 0)
    Z = enc(torch.randn(50, 10))
    assert Z.shape == (50, 8)
    assert torch.allclose(Z.norm(dim=1), torch.ones(50), atol=1e-6)
    with pytest.raises(ValueError, match="out_activation"):
        MLPEncoder(3, (4,), 2, out_activation="relu")
    with pytest.raises(ValueError, match="positive"):
        MLPEncoder(3, (0,), 2)


def test_out_activation_none_gives_a_linear_last_layer():
    enc = MLPEncoder(3, (), 2, out_activation="none")
    with torch.no_grad():
        enc.layers[0].weight.copy_(torch.tensor([[2.0, 0, 0], [0, 0, 0]]))
    assert torch.allclose(enc.forward_raw(torch.tensor([[1.0, 0, 0]])), torch.tensor([[2.0, 0.0]]))


def test_autograd_matches_the_papers_equations_6_to_9_on_a_tiny_network():
    """Backprop by hand, exactly as eqs. 6-9 (network output f before normalisation, as in the
    derivation), for a 3 -> 4 -> 2 tanh network and one pair, plus the regulariser's 2*lambda*theta."""
    torch.manual_seed(0)
    enc = MLPEncoder(3, (4,), 2, init="paper", generator=torch.Generator().manual_seed(1)).double()
    with torch.no_grad():
        for layer in enc.layers:
            layer.bias.uniform_(-0.1, 0.1)
    xi = torch.tensor([0.3, -1.2, 0.8], dtype=torch.float64)
    xj = torch.tensor([-0.5, 0.4, 1.1], dtype=torch.float64)
    g = torch.tensor(2.0, dtype=torch.float64)
    lam = 0.01

    fi, fj = enc.forward_raw(xi[None])[0], enc.forward_raw(xj[None])[0]
    d2 = (fi - fj).square().sum()
    J = hraml_objective(d2[None], g[None], enc, lam)
    J.backward()

    W1, b1 = enc.layers[0].weight.detach().numpy(), enc.layers[0].bias.detach().numpy()
    W2, b2 = enc.layers[1].weight.detach().numpy(), enc.layers[1].bias.detach().numpy()
    x_i, x_j = xi.numpy(), xj.numpy()
    h_i, h_j = np.tanh(W1 @ x_i + b1), np.tanh(W1 @ x_j + b1)
    f_i, f_j = np.tanh(W2 @ h_i + b2), np.tanh(W2 @ h_j + b2)
    r = ((f_i - f_j) ** 2).sum() - 2.0  # D^2 - g
    # eqs. 6-7, output layer: delta = (D^2 - g) * s'(x^(M)) * (f(x_i) - f(x_j))
    delta2_i = r * (1 - f_i**2) * (f_i - f_j)
    delta2_j = r * (1 - f_j**2) * (f_i - f_j)
    dW2 = np.outer(delta2_i, h_i) - np.outer(delta2_j, h_j)
    db2 = delta2_i - delta2_j
    # eqs. 8-9, hidden layer: delta = s'(x^(m)) * W^(m+1)T delta^(m+1)
    delta1_i = (1 - h_i**2) * (W2.T @ delta2_i)
    delta1_j = (1 - h_j**2) * (W2.T @ delta2_j)
    dW1 = np.outer(delta1_i, x_i) - np.outer(delta1_j, x_j)
    db1 = delta1_i - delta1_j
    by_hand = [dW1 + 2 * lam * W1, db1 + 2 * lam * b1, dW2 + 2 * lam * W2, db2 + 2 * lam * b2]
    for p, expected in zip(enc.parameters(), by_hand):
        np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_gradient_through_the_normalisation_matches_finite_differences():
    enc = MLPEncoder(3, (5,), 4, generator=torch.Generator().manual_seed(2)).double()
    X = torch.randn(6, 3, dtype=torch.float64)
    G = torch.rand(6, 6, dtype=torch.float64)
    G = G + G.T

    from torch.func import functional_call

    # gradcheck with the parameters as inputs, through a functional call
    names = [n for n, _ in enc.named_parameters()]

    def f(*params):
        Z = functional_call(enc, dict(zip(names, params)), (X,))
        return alignment_loss(pairwise_sq_dists(Z), G)

    params = tuple(p.detach().clone().requires_grad_(True) for p in enc.parameters())
    assert torch.autograd.gradcheck(f, params)


def test_closed_form_all_pairs_loss_matches_autograd_and_finite_differences():
    from hraml_core.loss import all_pairs_alignment_loss

    gen = torch.Generator().manual_seed(5)
    Z = torch.nn.functional.normalize(torch.randn(7, 3, generator=gen, dtype=torch.float64), dim=1)
    G = 2.0 * (torch.rand(7, 7, generator=gen, dtype=torch.float64) > 0.5)
    G = torch.triu(G, 1) + torch.triu(G, 1).T

    Za = Z.clone().requires_grad_(True)
    reference = 0.25 * sum(
        (pairwise_sq_dists(Za)[i, j] - G[i, j]) ** 2 for i in range(7) for j in range(i + 1, 7)
    ) / (7 * 6 / 2)
    reference.backward()
    Zb = Z.clone().requires_grad_(True)
    loss = all_pairs_alignment_loss(Zb, G)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(float(reference.detach()), rel=1e-12)
    torch.testing.assert_close(Zb.grad, Za.grad, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda z: all_pairs_alignment_loss(z, G), (Z.clone().requires_grad_(True),))
    with pytest.raises(ValueError, match="B x B"):
        all_pairs_alignment_loss(Z, G[:3, :3])
