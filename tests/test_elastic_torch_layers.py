"""Elastic supernets on torch's own layers and module idioms.

Packed weights (attention's q|k|v, a recurrent layer's gates) slice each block on its own;
parametrized modules (``weight_norm``), tied weights and one block reused in a list share the
store; a buffer the model updates in place while training keeps the update; and what a supernet
cannot hold (a tensor kept as a plain attribute, a tensor's value read in ``__init__``) is
refused at construction, with what to write instead.
"""
from __future__ import annotations

import dataclasses
import os
import sysconfig
import threading

import pytest
import torch
from torch import nn

import symnas as sn
from models_for_tests import subnet_agrees
from symnas import sites
from symnas.mixed import UnmixableChoice
from symnas.supernet import Supernet

pytestmark = pytest.mark.usefixtures("one_thread")


@sn.searchable
class Attn(nn.Module):
    def __init__(self, dim=16):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        return self.head(self.attn(x, x, x)[0].mean(1))


def test_attention_slices_q_k_and_v_each():
    """Before: the 8-wide k was rows 8..15 of the 16-wide q (the packed tensor cut as one)."""
    torch.manual_seed(0)
    net = Supernet(sn.Space(Attn(dim=sn.oneof([8, 16], name="dim")))).eval()
    small = subnet_agrees(net, (0,), torch.randn(2, 5, 8))
    subnet_agrees(net, (1,), torch.randn(2, 5, 16))
    store = net.model.attn
    for got, full in zip(small.attn.in_proj_weight.chunk(3), store.in_proj_weight.chunk(3)):
        assert torch.equal(got, full[:8, :8])
    for got, full in zip(small.attn.in_proj_bias.chunk(3), store.in_proj_bias.chunk(3)):
        assert torch.equal(got, full[:8])


@sn.searchable
class Recurrent(nn.Module):
    def __init__(self, cell, hidden=8):
        super().__init__()
        self.rnn = cell(5, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(2 * hidden, 3)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


@pytest.mark.parametrize("cell,gates", [(nn.LSTM, 4), (nn.GRU, 3), (nn.RNN, 1)])
def test_recurrent_layers_slice_each_gate_and_each_direction(cell, gates):
    """Before: a 4-wide LSTM's forget gate was the second half of the 8-wide input gate."""
    torch.manual_seed(0)
    net = Supernet(sn.Space(Recurrent(cell, hidden=sn.oneof([4, 8], name="hidden")))).eval()
    x = torch.randn(2, 6, 5)
    small = subnet_agrees(net, (0,), x)
    subnet_agrees(net, (1,), x)
    for name in ("weight_ih_l0", "weight_hh_l1_reverse", "bias_ih_l1"):
        got, full = getattr(small.rnn, name), getattr(net.model.rnn, name)
        for g, f in zip(got.chunk(gates), full.chunk(gates)):
            assert torch.equal(g, f[:4, :g.shape[1]] if g.dim() == 2 else f[:4]), name
    # the second layer reads both directions' outputs: [forward 8 | backward 8] in the store
    got, full = small.rnn.weight_ih_l1, net.model.rnn.weight_ih_l1
    assert torch.equal(got[:4, 4:], full[:4, 8:12])
    net.train()
    net.use((0,))
    net(x).sum().backward()
    grad = net.model.rnn.weight_ih_l0.grad.reshape(gates, 8, 5)
    assert grad[:, :4].abs().sum(1).gt(0).all() and grad[:, 4:].eq(0).all()


@sn.searchable
class Normed(nn.Module):
    def __init__(self, w=8):
        super().__init__()
        self.c = nn.utils.parametrizations.weight_norm(nn.Conv1d(4, w, 3, padding=1))
        self.head = nn.Linear(w, 3)

    def forward(self, x):
        return self.head(self.c(x).mean(-1))


def test_a_parametrized_layer_shares_the_store():
    """Before: torch gives each parametrized module a class of its own, so no configuration
    matched the store; each ran on zero-padded separate weights (NaN in the largest)."""
    net = Supernet(sn.Space(Normed(w=sn.oneof([4, 8], name="w")))).eval()
    assert net.sharing == {"w": "entangled"} and net.separate == {}
    assert sum(p.numel() for p in net.weight_parameters()) == net.count_params(net.extreme(True))
    x = torch.randn(2, 4, 6)
    for g in [(0,), (1,)]:
        model = subnet_agrees(net, g, x)
        assert torch.isfinite(model(x)).all()


@sn.searchable
class Tied(nn.Module):
    def __init__(self, dim=8):
        super().__init__()
        self.emb = nn.Embedding(20, dim)
        self.mid = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, 20, bias=False)
        self.head.weight = self.emb.weight            # tied, as in a language model

    def forward(self, tokens):
        return self.head(torch.tanh(self.mid(self.emb(tokens))))


def test_tied_weights_stay_tied_in_a_subnet():
    """Before: net.subnet() failed with a bare KeyError: 'head.weight'."""
    net = Supernet(sn.Space(Tied(dim=sn.oneof([4, 8], name="dim")))).eval()
    tokens = torch.randint(0, 20, (2, 7))
    for g in [(0,), (1,)]:
        model = subnet_agrees(net, g, tokens)
        assert model.head.weight is model.emb.weight


@sn.searchable
class Reused(nn.Module):
    """One block applied ``depth`` times (ALBERT-style sharing across layers)."""

    def __init__(self, dim=8, depth=3):
        super().__init__()
        self.stem = nn.Linear(4, dim)
        block = nn.Sequential(nn.Linear(dim, dim), nn.Tanh())
        self.layers = nn.ModuleList([block] * depth)
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


def test_a_block_reused_in_a_list_is_one_block_of_the_store():
    """Before: every depth but 1, the largest included, failed: 'needs a weight the supernet
    was not built with ('layers.1.0.weight')'."""
    space = sn.Space(Reused(dim=sn.oneof([4, 8], name="dim"), depth=sn.oneof([1, 2, 3], name="depth")))
    net = Supernet(space).eval()
    x = torch.randn(2, 4)
    for g in [(0, 0), (0, 2), (1, 1), (1, 2)]:
        model = subnet_agrees(net, g, x)
        assert all(layer is model.layers[0] for layer in model.layers)
    assert sum(p.numel() for p in net.weight_parameters()) == net.count_params((1, 2)) == 139
    net.train()
    net.use((0, 2))
    net(x).sum().backward()
    assert net.model.layers[0][0].weight.grad[:4, :4].abs().sum() > 0


@sn.searchable
class Codebook(nn.Module):
    def __init__(self, dim=8):
        super().__init__()
        self.fc = nn.Linear(4, dim)
        self.register_buffer("codebook", torch.zeros(3, dim))

    def forward(self, x):
        h = self.fc(x)
        if self.training:
            with torch.no_grad():
                self.codebook.mul_(0.5).add_(h[:3], alpha=0.5)
        return h - self.codebook.mean(0)


def test_a_buffer_updated_in_place_while_training_keeps_the_update():
    """Before: a smaller configuration got a copy of its (non-contiguous) slice, and the update
    went to the copy."""
    net = Supernet(sn.Space(Codebook(dim=sn.oneof([4, 8], name="dim")))).train()
    x = torch.randn(3, 4)
    with net.using((0,)):
        net(x)
    assert net.model.codebook[:, :4].abs().sum() > 0 and net.model.codebook[:, 4:].eq(0).all()


def test_what_a_supernet_cannot_hold_is_refused_with_the_fix():
    @sn.searchable
    class Masked(nn.Module):
        def __init__(self, dim=8):
            super().__init__()
            self.fc = nn.Linear(4, dim)
            self.mask = torch.tril(torch.ones(5, 5))      # a plain attribute, not a buffer

        def forward(self, x):
            return (self.mask @ self.fc(x)).mean(1)

    space = sn.Space(Masked(dim=sn.oneof([4, 8], name="dim")))
    assert space.build([0])(torch.randn(2, 5, 4)).shape == (2, 4)     # fine as one model
    # before: the supernet computed with a meta tensor and returned memory never written
    with pytest.raises(ValueError, match=r"Masked.mask .*plain attribute.*register_buffer\('mask'"):
        Supernet(space)

    @sn.searchable
    class Listed(nn.Module):
        def __init__(self, dim=8):
            super().__init__()
            self.fc = nn.Linear(4, dim)
            self.masks = {"causal": [torch.tril(torch.ones(5, 5))]}    # nested in containers
            self._scale = torch.ones(())                                # private

        def forward(self, x):
            return (self.masks["causal"][0] @ self.fc(x)).mean(1) * self._scale

    with pytest.raises(ValueError, match=r"Listed.masks .*plain attribute"):
        Supernet(sn.Space(Listed(dim=sn.oneof([4, 8], name="dim"))))

    @sn.searchable
    class Scaled(nn.Module):
        def __init__(self, dim=8):
            super().__init__()
            self.fc = nn.Linear(4, dim)
            self.scale = float(torch.tensor(float(dim)).rsqrt())

        def forward(self, x):
            return self.fc(x) * self.scale

    with pytest.raises(ValueError, match=r"read a tensor's value .*meta device.*math.sqrt"):
        Supernet(sn.Space(Scaled(dim=sn.oneof([4, 8], name="dim"))))


@sn.searchable
class Stacked(nn.Module):
    def __init__(self, layers=1, bias=True):
        super().__init__()
        self.rnn = nn.LSTM(5, 8, num_layers=layers, bias=bias, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


def test_a_choice_that_drops_tensors_inside_a_module_is_not_called_weightless():
    """Before: the number of an LSTM's layers and its bias flag were reported "no weights"."""
    space = sn.Space(Stacked(layers=sn.oneof([1, 2], name="layers"),
                             bias=sn.oneof([False, True], name="bias")))
    net = Supernet(space)
    assert net.sharing == {"layers": "entangled", "bias": "entangled"}
    assert "layers: entangled" in net.describe()
    assert net.count_params((0, 1)) < net.count_params((1, 1)) and \
        net.count_params((1, 0)) < net.count_params((1, 1))
    subnet_agrees(net.eval(), (0, 0), torch.randn(2, 6, 5))


# ---- found by a review of the changes above -------------------------------------------------
@sn.searchable
class HookNormed(nn.Module):
    def __init__(self, w=8, wrap=nn.utils.weight_norm):
        super().__init__()
        self.c = wrap(nn.Conv1d(4, w, 3, padding=1))   # hook style: weight recomputed per call
        self.head = nn.Linear(w, 3)

    def forward(self, x):
        return self.head(self.c(x).mean(-1))


@pytest.mark.filterwarnings("ignore:`torch.nn.utils.weight_norm` is deprecated:FutureWarning")
@pytest.mark.parametrize("wrap", [nn.utils.weight_norm, nn.utils.spectral_norm])
def test_hook_style_weight_norm_is_not_taken_for_a_tensor_attribute(wrap):
    net = Supernet(sn.Space(HookNormed(w=sn.oneof([4, 8], name="w"), wrap=wrap))).eval()
    for g in [(0,), (1,)]:
        subnet_agrees(net, g, torch.randn(2, 4, 6))


@sn.searchable
class KernelNormed(nn.Module):
    def __init__(self, k=5):
        super().__init__()
        self.c = nn.utils.parametrizations.weight_norm(nn.Conv2d(4, 4, k, padding=k // 2))
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.c(x).mean((2, 3)))


def test_a_parametrized_conv_takes_the_centre_of_a_larger_kernel():
    net = Supernet(sn.Space(KernelNormed(k=sn.oneof([3, 5], name="k")))).eval()
    small = subnet_agrees(net, (0,), torch.randn(2, 4, 7, 7))
    got = small.c.parametrizations.weight.original1
    assert torch.equal(got, net.model.c.parametrizations.weight.original1[:, :, 1:4, 1:4])


@sn.searchable
class TiedGrown(nn.Module):
    """Tied weights whose largest shape is not the largest number's (16 // k)."""

    def __init__(self, k=1):
        super().__init__()
        dim = 16 // k if k < 3 else 12
        self.emb = nn.Embedding(20, dim)
        self.head = nn.Linear(dim, 20, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, tokens):
        return self.head(torch.tanh(self.emb(tokens)))


def test_tied_weights_stay_tied_when_the_store_grows():
    """Before: the store grew one name at a time, and the two names came apart."""
    net = Supernet(sn.Space(TiedGrown(k=sn.oneof([3, 2, 1], name="k"))))
    assert net.model.head.weight is net.model.emb.weight
    tokens = torch.randint(0, 20, (4, 5))
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.5)
    for g in [(0,), (2,), (1,)]:
        with net.using(g):
            opt.zero_grad()
            net(tokens).logsumexp(-1).mean().backward()
            opt.step()
    net.eval()
    for g in [(0,), (1,), (2,)]:
        subnet_agrees(net, g, tokens)


@dataclasses.dataclass
class Batch:
    x: torch.Tensor
    mask: torch.Tensor


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, b: Batch):
        return self.fc(b.x) * b.mask


class TanhGate(Gate):
    def forward(self, b: Batch):
        return torch.tanh(self.fc(b.x)) * b.mask


@sn.searchable
class OnBatches(nn.Module):
    def __init__(self, op=Gate, width=4):
        super().__init__()
        self.op = op()
        self.head = nn.Linear(4, width)

    def forward(self, x):
        return self.head(self.op(Batch(x, torch.ones_like(x))))


def test_a_candidate_called_with_an_input_object_is_not_a_factory_call():
    space = sn.Space(OnBatches(op=sn.oneof([Gate, TanhGate], name="op"),
                               width=sn.oneof([2, 4], name="width")))
    net = Supernet(space)
    assert net(torch.randn(2, 4)).shape == (2, 4)               # mixed; before: refused


class StandardizedConv(nn.Conv2d):
    def forward(self, x):
        flat = self.weight.view(-1)                               # needs a contiguous weight
        w = ((flat - flat.mean()) / (flat.std() + 1e-5)).view_as(self.weight)
        return nn.functional.conv2d(x, w, self.bias, self.stride, self.padding)


@sn.searchable
class Standardized(nn.Module):
    def __init__(self, w1=8, w2=8):
        super().__init__()
        self.a = StandardizedConv(3, w1, 3, padding=1)
        self.b = StandardizedConv(w1, w2, 3, padding=1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x))).mean((2, 3))


def test_frozen_parameters_reach_the_program_contiguous():
    net = Supernet(sn.Space(Standardized(w1=sn.oneof([4, 8], name="w1"),
                                         w2=sn.oneof([4, 8], name="w2"))))
    for p in net.weight_parameters():
        p.requires_grad_(False)
    with net.using((0, 0)):
        assert net(torch.randn(2, 3, 6, 6)).shape == (2, 4)       # before: "view size is not compatible"


def _flat_stages_in_a_thread(out: dict, i: int) -> None:
    from test_elastic_user_models import FlatStages
    net = Supernet(sn.Space(FlatStages(d1=sn.oneof([1, 2], name="d1"), d2=sn.oneof([1, 2], name="d2"))))
    with net.using((0, 1)):
        out[i] = [k for _, k, _ in net._current()[1] if k.startswith("body.")]


def test_supernets_built_in_two_threads_align_as_one_built_alone():
    """Before: one recording's stop frame was global, and a thread took the other's."""
    out: dict = {}
    _flat_stages_in_a_thread(out, -1)
    threads = [threading.Thread(target=_flat_stages_in_a_thread, args=(out, i)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out[0] == out[1] == out[-1]


def test_sites_survive_edits_elsewhere_in_the_file_and_count_installed_code():
    source = "def make():\n    return torch.nn.Linear(2, 2)\n"
    made = []
    for pad in ("", "\n\n\n# an edit above\n"):
        scope: dict = {"torch": torch}
        exec(compile(pad + source, "user_model.py", "exec"), scope)
        with sites.recording():
            made.append(scope["make"]())
    assert sites.site(made[0]) == sites.site(made[1]) and sites.site(made[0])[-1] == ("make", 1)
    installed = sysconfig.get_paths()["purelib"]
    assert sites._user(os.path.join(installed, "a_package", "model.py"))
    assert not sites._user(os.path.join(os.path.dirname(torch.__file__), "nn", "x.py"))


# ---- found by a second review -----------------------------------------------------------------
def test_a_module_instance_called_with_a_class_or_dtype_is_named_a_factory_call():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(8, 8, 3, padding=1)

    @sn.searchable
    class Net(nn.Module):
        def __init__(self, block):
            super().__init__()
            self.block = block(8, 8, act=nn.GELU, dtype=torch.float32)   # meant as a factory

    with pytest.raises(UnmixableChoice, match="like a layer factory"):
        Supernet(sn.Space(Net(block=sn.oneof([Block(), Block()], name="block"))))


@sn.searchable
class MaskedNormed(nn.Module):
    def __init__(self, w=8, k=5):
        super().__init__()
        self.c = nn.utils.weight_norm(nn.Conv2d(4, w, k, padding=k // 2))
        self.head = nn.Linear(w, 2)

    def forward(self, x):
        return self.head(self.c(x).mean((2, 3)))


@pytest.mark.filterwarnings("ignore:`torch.nn.utils.weight_norm` is deprecated:FutureWarning")
def test_hook_style_weight_norm_takes_the_kernel_centre_and_still_refuses_other_attributes():
    net = Supernet(sn.Space(MaskedNormed(k=sn.oneof([3, 5], name="k")))).eval()
    small = subnet_agrees(net, (0,), torch.randn(2, 4, 7, 7))
    assert torch.equal(small.c.weight_v, net.model.c.weight_v[:, :, 1:4, 1:4])

    @sn.searchable
    class Masked(nn.Module):            # a pre-hook recomputes weight, not the plain mask
        def __init__(self, w=8):
            super().__init__()
            self.c = nn.utils.weight_norm(nn.Conv2d(4, w, 3, padding=1))
            self.c.mask = torch.ones(w, 4, 3, 3)

    with pytest.raises(ValueError, match=r"Conv2d.mask \(at 'c.mask'\) is a tensor kept as a plain"):
        Supernet(sn.Space(Masked(w=sn.oneof([4, 8], name="w"))))


@sn.searchable
class NormedGRU(nn.Module):
    def __init__(self, w=8):
        super().__init__()
        self.rnn = nn.utils.parametrizations.weight_norm(nn.GRU(3, w, batch_first=True),
                                                         "weight_hh_l0").float()
        self.head = nn.Linear(w, 2)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


def test_torch_own_lists_of_tensors_are_not_taken_for_plain_attributes():
    """An RNN refills its private ``_flat_weights`` with computed tensors after ``.float()``."""
    net = Supernet(sn.Space(NormedGRU(w=sn.oneof([4, 8], name="w")))).eval()
    for g in [(0,), (1,)]:
        subnet_agrees(net, g, torch.randn(2, 5, 3))


def test_parameters_in_a_plain_list_and_lazy_modules_are_refused_with_the_fix():
    @sn.searchable
    class Listed(nn.Module):
        def __init__(self, w=8):
            super().__init__()
            self.mats = [nn.Parameter(torch.randn(4, w))]

    with pytest.raises(ValueError, match="plain container.*nn.ParameterList"):
        Supernet(sn.Space(Listed(w=sn.oneof([4, 8], name="w"))))

    @sn.searchable
    class Lazy(nn.Module):
        def __init__(self, w=8):
            super().__init__()
            self.fc = nn.LazyLinear(w)

    with pytest.raises(ValueError, match=r"LazyLinear \(at 'fc'\) is a lazy module.*in_features"):
        Supernet(sn.Space(Lazy(w=sn.oneof([4, 8], name="w"))))


@sn.searchable
class EMA(nn.Module):
    def __init__(self, dim=8):
        super().__init__()
        self.fc = nn.Linear(4, dim)
        self.codebook = nn.Parameter(torch.zeros(3, dim), requires_grad=False)   # EMA, no grad
        self.register_buffer("table", torch.ones(2, dim))

    def forward(self, x):
        h = self.fc(x)
        if self.training:
            with torch.no_grad():
                self.codebook.mul_(0.5).add_(h[:3], alpha=0.5)
        return h - self.codebook.mean(0) + self.table.view(-1)[: h.shape[1]]   # (a contiguous buffer)


def test_a_frozen_weight_updated_in_place_keeps_the_update_and_buffers_are_contiguous():
    net = Supernet(sn.Space(EMA(dim=sn.oneof([4, 8], name="dim")))).train()
    with net.using((0,)):
        net(torch.randn(3, 4))
    assert net.model.codebook[:, :4].abs().sum() > 0 and net.model.codebook[:, 4:].eq(0).all()
