"""Recurrent language models: Elman RNN, LSTM (Hochreiter & Schmidhuber 1997) and GRU (Cho et al. 2014).

    h_t = cell(h_{t-1}, embed(u_t)),   u = [START, x_0, …, x_{T-2}]
    p(x_t | x_<t) = softmax(W h_t)        (discrete: characters, levels)
                  = Σ_k π_k N(μ_k, σ_k²)  (real-valued sequences, mixture density head; Graves 2013)

The hidden state is the whole memory of the past, so sampling carries it forward one step at a
time (no window limit).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..data.base import DataInfo
from .autoregressive import SequenceARModel
from .base import ModelError
from .registry import register

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@register("rnn")
class RNNModel(SequenceARModel):
    """RNN / LSTM / GRU autoregressive model (cell=rnn|lstm|gru) for text, levels and real-valued sequences."""

    @dataclass
    class Config:
        cell: str = "lstm"
        hidden: int = 256
        layers: int = 2
        embd: int = 64
        dropout: float = 0.0
        components: int = 5          # mixture components (real-valued data)
        class_cond: bool = False     # true: condition on the labels when the data have them

    def __init__(self, info: DataInfo, config: "RNNModel.Config | None" = None):
        super().__init__(info, config)
        c = self.config
        if c.cell not in CELLS:
            raise ModelError(f"rnn: cell must be one of {', '.join(CELLS)}, got {c.cell!r}")
        self.embed = (nn.Embedding(self.input_size, c.embd) if info.discrete else nn.Linear(self.input_size, c.embd))
        self.rnn = CELLS[c.cell](c.embd, c.hidden, num_layers=c.layers, batch_first=True,
                                 dropout=c.dropout if c.layers > 1 else 0.0)
        self._setup_layout(c.hidden, c.components, class_dim=c.embd if c.class_cond else 0)

    def core(self, u, c, state):
        e = self.embed(u)
        if c is not None:
            e = e + c[:, None]
        h, state = self.rnn(e, state)
        return h, state
