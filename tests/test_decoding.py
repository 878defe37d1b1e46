"""Decoding filters and searches keep exactly what they must (genlab.sampling.decoding)."""
import itertools
import math

import pytest
import torch

from genlab.sampling import decoding as D


def test_top_k_keeps_exactly_the_k_largest():
    logits = torch.tensor([[0.1, 2.0, -1.0, 3.0, 0.5], [5.0, 4.0, 3.0, 2.0, 1.0]])
    out = D.top_k_filter(logits, 2)
    assert torch.isfinite(out).tolist() == [[False, True, False, True, False], [True, True, False, False, False]]
    assert torch.equal(out[torch.isfinite(out)], logits[torch.isfinite(out)])     # kept logits unchanged


@pytest.mark.parametrize("p,kept", [(0.5, 1), (0.51, 2), (0.75, 2), (0.81, 3), (0.96, 4), (1.0, 4)])
def test_top_p_keeps_the_token_that_crosses_p(p, kept):
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3])          # sorted: 0.5, 0.3, 0.15, 0.05 (cum 0.5, 0.8, 0.95, 1)
    out = D.top_p_filter(probs.log()[None], p)[0]
    keep = torch.isfinite(out)
    assert int(keep.sum()) == kept
    order = torch.argsort(probs, descending=True)
    assert keep[order[:kept]].all() and not keep[order[kept:]].any()
    assert float(probs[keep].sum()) >= p - 1e-6                                   # mass ≥ p ...
    assert float(probs[keep].sum() - probs[keep].min()) < p                       # ... and minimal


def test_sampling_frequencies_match_the_renormalised_nucleus():
    g = torch.Generator().manual_seed(0)
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3])
    x = D.sample_next(probs.log().expand(40000, -1), top_p=0.75, generator=g)
    freq = torch.bincount(x, minlength=4).double() / len(x)
    target = torch.tensor([0.0, 0.5 / 0.8, 0.0, 0.3 / 0.8], dtype=torch.float64)
    assert freq[0] == 0 and freq[2] == 0
    assert torch.allclose(freq, target, atol=0.01)


def test_temperature_scales_logits_and_tends_to_greedy():
    logits = torch.randn(200, 7)
    assert torch.equal(D.sample_next(logits, temperature=0), logits.argmax(-1))
    assert torch.equal(D.sample_next(logits, greedy=True), logits.argmax(-1))
    g = torch.Generator().manual_seed(1)
    assert torch.equal(D.sample_next(logits, temperature=1e-4, generator=g), logits.argmax(-1))
    # T = 2 gives p ∝ exp(z / 2): check frequencies on one row
    z = torch.tensor([1.0, 0.0, -1.0])
    x = D.sample_next(z.expand(40000, -1), temperature=2.0, generator=g)
    freq = torch.bincount(x, minlength=3).double() / len(x)
    assert torch.allclose(freq, torch.softmax(z.double() / 2, 0), atol=0.01)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="top_p"):
        D.sample_next(torch.zeros(3), top_p=0.0)
    with pytest.raises(ValueError, match="top_k"):
        D.sample_next(torch.zeros(3), top_k=0)
    with pytest.raises(ValueError, match="temperature"):
        D.sample_next(torch.zeros(3), temperature=-1)


def _markov_step(first, trans):
    """A tiny hand-made AR model: p(x_0) = first, p(x_t | x_{t-1}) = trans[t-1][x_{t-1}] (position-dependent)."""
    def step(tokens, state):
        prev_len = 0 if state is None else state
        L = prev_len + tokens.shape[1]
        out = []
        for j in range(tokens.shape[1]):
            t = prev_len + j            # tokens[:, j] is x_t; its next-token distribution is trans[t]
            out.append(trans[t][tokens[:, j]].log())
        return torch.stack(out, 1), L
    return step


def _seq_logp(seq, first, trans):
    lp = math.log(first[seq[0]])
    for t in range(1, len(seq)):
        lp += math.log(trans[t - 1][seq[t - 1], seq[t]])
    return lp


def test_beam_search_beats_greedy_and_matches_brute_force():
    first = torch.tensor([0.6, 0.4, 1e-12], dtype=torch.float64)
    first = first / first.sum()
    # after token 0: flat (max 1/3); after token 1: peaked (0.9) -> greedy (0, ·) = 0.2 < beam (1, 0) = 0.36
    t0 = torch.tensor([[1 / 3, 1 / 3, 1 / 3], [0.9, 0.05, 0.05], [1 / 3, 1 / 3, 1 / 3]], dtype=torch.float64)
    step = _markov_step(first, [t0])
    empty = torch.zeros(1, 0, dtype=torch.long)
    greedy = D.generate(step, empty, 2, greedy=True, first_logits=first.log())
    assert greedy[0].tolist()[0] == 0
    seqs, scores = D.beam_search(step, empty, 2, beam_width=2, first_logits=first.log())
    assert seqs[0].tolist() == [1, 0]
    assert math.isclose(float(scores[0]), math.log(0.36), rel_tol=1e-9)


def test_beam_search_with_full_width_is_exact():
    g = torch.Generator().manual_seed(3)
    V, T = 3, 4
    first = torch.softmax(torch.randn(V, generator=g).double() * 2, 0)
    trans = [torch.softmax(torch.randn(V, V, generator=g).double() * 2, -1) for _ in range(T - 1)]
    step = _markov_step(first, trans)
    brute = sorted(((_seq_logp(s, first, trans), s) for s in itertools.product(range(V), repeat=T)), reverse=True)
    seqs, scores = D.beam_search(step, torch.zeros(1, 0, dtype=torch.long), T, beam_width=V ** (T - 1),
                                 first_logits=first.log())
    assert tuple(seqs[0].tolist()) == brute[0][1]
    assert math.isclose(float(scores[0]), brute[0][0], rel_tol=1e-9)
    # the k best beams are the k best sequences, in order
    assert [tuple(s) for s in seqs[:5].tolist()] == [b[1] for b in brute[:5]]
