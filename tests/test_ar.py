"""Autoregressive families: causality by input gradients, exact normalisation by enumeration,
key/value cache agreement, samples that follow the model's own probabilities."""
import itertools

import pytest
import torch

import genlab as gl
from genlab.data.base import DataInfo, Dataset
from genlab.nn.causal import CausalConv1d, GatedPixelBlock, MaskedConv2d, receptive_field

TEXT = DataInfo(shape=(4,), kind="discrete", num_levels=3, modality="text", vocab=("a", "b", "c"), name="tiny")
SMALL = {"gpt": dict(n_layer=2, n_head=2, n_embd=16), "rnn": dict(hidden=16, layers=2, embd=8),
         "wavenet": dict(channels=8, skip_channels=16, embd=8)}


# ---------------------------------------------------------------------------------------------
# layers
def test_causal_conv1d_receptive_field_exact():
    torch.manual_seed(0)
    for shift in (False, True):
        conv = CausalConv1d(1, 1, kernel_size=3, dilation=2, shift=shift)
        x = torch.randn(1, 1, 12, requires_grad=True)
        conv(x)[0, 0, 7].backward()
        nz = (x.grad[0, 0] != 0).nonzero()[:, 0].tolist()
        assert nz == ([3, 5, 7] if not shift else [2, 4, 6])


def test_dilated_stack_sees_exactly_its_past():
    torch.manual_seed(0)
    stack = torch.nn.Sequential(*[CausalConv1d(2, 2, 2, d) for d in (1, 2, 4)])
    x = torch.randn(1, 2, 20, requires_grad=True)
    stack(x)[0, :, 12].sum().backward()
    nz = (x.grad[0].abs().sum(0) != 0).nonzero()[:, 0].tolist()
    assert nz == list(range(12 - receptive_field(2, (1, 2, 4)) + 1, 13))     # 8 positions: 5..12


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_conv2d_type_a_b(mask_type):
    torch.manual_seed(0)
    conv = MaskedConv2d(1, 1, 5, mask_type)
    torch.nn.init.uniform_(conv.weight, 0.5, 1.0)       # no accidental zero weights
    x = torch.randn(1, 1, 7, 7, requires_grad=True)
    conv(x)[0, 0, 3, 3].backward()
    g = x.grad[0, 0] != 0
    expect = torch.zeros(7, 7, dtype=torch.bool)
    expect[1:3, 1:6] = True                              # two rows above, within the 5-wide kernel
    expect[3, 1:3] = True                                # left of the centre on its row
    expect[3, 3] = mask_type == "B"
    assert torch.equal(g, expect)


def test_gated_pixel_blocks_are_causal_without_blind_spot():
    torch.manual_seed(0)
    blocks = [GatedPixelBlock(3, 8, 5, first=True)] + [GatedPixelBlock(8, 8, 3) for _ in range(4)]
    H = W = 6
    for i, j in [(0, 0), (2, 3), (5, 5), (3, 0)]:
        x = torch.randn(1, 3, H, W, requires_grad=True)
        v = h = x
        for b in blocks:
            v, h = b(v, h)
        h[0, :, i, j].sum().backward()
        g = x.grad[0].abs().sum(0).flatten() != 0
        p = i * W + j
        assert not g[p:].any(), f"output ({i},{j}) depends on the current or a later pixel"
        assert g[:p].all(), f"output ({i},{j}) misses an earlier pixel (blind spot)"


# ---------------------------------------------------------------------------------------------
# causality of whole models by input gradients
def _embedding_grads(model, module, x, t, cond=None):
    """d out_t / d (embedded shifted inputs u_s) for every s."""
    store = {}

    def hook(mod, inp, out):
        out.retain_grad()
        store["e"] = out
    hd = module.register_forward_hook(hook)
    out = model.outputs(x, cond)
    hd.remove()
    o = out[:, t] if isinstance(out, torch.Tensor) else out["mean"][:, t]
    o.sum().backward()
    return store["e"].grad.abs().flatten(2).sum(-1)[0] if store["e"].dim() > 2 else store["e"].grad.abs()[0]


@pytest.mark.parametrize("name", ["gpt", "rnn", "wavenet"])
def test_sequence_models_are_causal(name):
    info = DataInfo(shape=(10,), kind="discrete", num_levels=5, modality="text", vocab=tuple("abcde"))
    model = gl.create(name, data=info, **SMALL[name])
    emb = model.transformer.wte if name == "gpt" else model.embed
    x = torch.randint(0, 5, (1, 10))
    for t in (0, 4, 9):
        model.zero_grad()
        g = _embedding_grads(model, emb, x, t)
        # output t predicts x_t from u_{≤t} = (START, x_0..x_{t-1}); u_{>t} must not matter
        assert (g[t + 1:] == 0).all(), f"{name}: output {t} depends on a later input"
        assert (g[: t + 1] != 0).all(), f"{name}: output {t} ignores an earlier input"


@pytest.mark.parametrize("name", ["rnn", "wavenet"])
def test_continuous_sequence_models_are_causal(name):
    info = DataInfo(shape=(8, 2), modality="sequence")
    model = gl.create(name, data=info, **SMALL[name])
    x = torch.randn(1, 8, 2)
    g = _embedding_grads(model, model.embed, x, 5)
    assert (g[6:] == 0).all() and (g[:6] != 0).all()


def test_made_model_is_causal_in_its_ordering():
    info = DataInfo(shape=(1, 3, 3), kind="discrete", num_levels=4, modality="image")
    model = gl.create("made", data=info, hidden=(32, 32), num_masks=3, ensemble=3)
    for m in range(3):
        model.use_mask(m)
        order = model.net.order
        for i in range(9):
            x = torch.rand(1, 9, requires_grad=True)
            model.net(x)[0, i].sum().backward()
            dep = x.grad[0] != 0
            assert not dep[order >= order[i]].any()


def test_pixelcnn_is_causal():
    info = DataInfo(shape=(1, 5, 5), kind="discrete", num_levels=4, modality="image")
    model = gl.create("pixelcnn", data=info, channels=8, layers=4, embd=4, head=16)
    for p in (0, 7, 24):
        h = torch.randn(1, 4, 5, 5, requires_grad=True)
        model.network(h)[0, p // 5, p % 5].sum().backward()
        g = h.grad[0].abs().sum(0).flatten() != 0
        assert not g[p:].any() and g[:p].all()


# ---------------------------------------------------------------------------------------------
# exact normalisation: Σ_x p(x) = 1 over every sequence
@pytest.mark.parametrize("name,kw", [("gpt", SMALL["gpt"]), ("rnn", dict(SMALL["rnn"], cell="gru")),
                                     ("rnn", dict(SMALL["rnn"], cell="rnn")), ("wavenet", SMALL["wavenet"]),
                                     ("made", dict(hidden=(16,), num_masks=3, ensemble=3))])
def test_probabilities_sum_to_one(name, kw):
    model = gl.create(name, data=TEXT, **kw)
    allx = torch.tensor(list(itertools.product(range(3), repeat=4)))
    with torch.no_grad():
        total = model.log_prob(allx).double().exp().sum()
    assert abs(float(total) - 1.0) < 1e-5


def test_pixelcnn_probabilities_sum_to_one():
    info = DataInfo(shape=(1, 2, 2), kind="discrete", num_levels=3, modality="image", cond="label", num_classes=2)
    model = gl.create("pixelcnn", data=info, channels=8, layers=2, embd=4, head=8, class_cond=True)
    allx = torch.tensor(list(itertools.product(range(3), repeat=4))).reshape(-1, 1, 2, 2)
    with torch.no_grad():
        for y in (0, 1):
            assert abs(float(model.log_prob(allx, cond=y * torch.ones(81, dtype=torch.long)).double().exp().sum()) - 1) < 1e-5


def test_continuous_rnn_density_integrates_to_one():
    info = DataInfo(shape=(2,), modality="sequence")
    model = gl.create("rnn", data=info, hidden=8, layers=1, embd=4, components=2, cell="lstm")
    g = torch.linspace(-10, 10, 801)
    xx = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        total = model.log_prob(xx).double().exp().sum() * (g[1] - g[0]) ** 2
    assert abs(float(total) - 1.0) < 2e-3


# ---------------------------------------------------------------------------------------------
# GPT key/value cache
def test_gpt_cached_and_uncached_logits_agree():
    info = DataInfo(shape=(12,), kind="discrete", num_levels=7, modality="text", vocab=tuple("abcdefg"))
    model = gl.create("gpt", data=info, n_layer=2, n_head=2, n_embd=16).eval()
    u = torch.cat([model._start(2), torch.randint(0, 7, (2, 11))], 1)
    full, _ = model.transformer(u)
    logits, state = model.core(u[:, :5], None, None)
    pieces = [logits]
    for t in range(5, 12, 3):
        lg, state = model.core(u[:, t:t + 3], None, state)
        pieces.append(lg)
    assert torch.allclose(torch.cat(pieces, 1), full, atol=1e-5)


def test_gpt_sampling_follows_its_probabilities():
    """Ancestral samples through the cached sampler have the frequencies exp(log_prob)."""
    info = DataInfo(shape=(2,), kind="discrete", num_levels=3, modality="text", vocab=("a", "b", "c"))
    model = gl.create("gpt", data=info, n_layer=1, n_head=1, n_embd=8)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(20)                                      # a peaked, non-uniform model
        allx = torch.tensor(list(itertools.product(range(3), repeat=2)))
        prob = model.log_prob(allx).double().exp()
        s = model.sample(20000, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(s[:, 0] * 3 + s[:, 1], minlength=9).double() / 20000
    assert torch.allclose(freq, prob, atol=0.012)


def test_text_sampling_options_and_prompt():
    ds = Dataset(x=torch.randint(0, 3, (64, 4)), info=TEXT)
    model = gl.create("gpt", data=ds, **SMALL["gpt"])
    out = model.sample(3, prompt="ab", max_new_tokens=10, temperature=0.7, top_k=2, top_p=0.9)
    assert out.shape == (3, 12) and all(t.startswith("ab") for t in model.decode(out))
    assert model.sample(5).shape == (5, 4)
    greedy = model.sample(2, prompt="c", max_new_tokens=6, greedy=True)
    assert torch.equal(greedy[0], greedy[1])
    beams = model.sample(2, prompt="a", max_new_tokens=3, beam_width=4)
    lp = lambda s: model.log_prob(s[:, :4]).detach()         # noqa: E731  (length 4 = the window)
    assert float(lp(beams[:1])) >= float(lp(beams[1:2])) - 1e-5
    with pytest.raises(gl.models.ModelError, match="vocabulary"):
        model.sample(1, prompt="xyz")


def test_short_training_learns_a_periodic_text(tmp_path):
    """A 3-periodic text has zero entropy after its first character: models must get close."""
    text = torch.tensor([0, 1, 2] * 400)
    ds = Dataset(x=text.unfold(0, 9, 1), info=DataInfo(shape=(9,), kind="discrete", num_levels=3, modality="text",
                                                       vocab=("a", "b", "c")))
    for name in ("gpt", "rnn", "wavenet"):
        model = gl.create(name, data=ds, **SMALL[name])
        gl.train(model, ds, steps=150, batch_size=32, lr=1e-2, progress=False)
        with torch.no_grad():
            lp = model.token_log_probs(ds.x[:100])
        assert float(-lp[:, 1:].mean()) < 0.05, name
    model.save_pretrained(tmp_path / "m")
    again = gl.load(tmp_path / "m")
    assert torch.allclose(again.log_prob(ds.x[:5]), model.log_prob(ds.x[:5]))
    assert again.decode(again.sample(1, prompt="ab", max_new_tokens=6, greedy=True))[0] == "abcabcab"


def test_made_bernoulli_and_continuous_heads_normalise():
    binary = DataInfo(shape=(1, 2, 2), kind="discrete", num_levels=2, modality="image")
    model = gl.create("made", data=binary, hidden=(16,), num_masks=2, ensemble=2)
    assert model.n_params == 1                                            # one Bernoulli logit per pixel
    allx = torch.tensor(list(itertools.product(range(2), repeat=4))).reshape(-1, 1, 2, 2)
    with torch.no_grad():
        assert abs(float(model.log_prob(allx).double().exp().sum()) - 1) < 1e-5
    cont = DataInfo(shape=(2,))
    model = gl.create("made", data=cont, hidden=(16,), components=2)
    g = torch.linspace(-10, 10, 801)
    xx = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        total = model.log_prob(xx).double().exp().sum() * (g[1] - g[0]) ** 2
    assert abs(float(total) - 1.0) < 2e-3
    assert model.sample(5).shape == (5, 2)
