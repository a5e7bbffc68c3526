"""The failure-risk networks (PyTorch; training only, behind the ``train`` extra).

Both read ``[batch, K, F]`` normalised window vectors and return one logit per row;
:class:`RiskHead` adds the sigmoid for export, so the ONNX model outputs a risk in [0, 1].

* :class:`GRUNet`: one GRU layer over the K windows; the last hidden state feeds a linear
  head. Order-aware and tiny (~20k parameters for F=84, hidden=48).
* :class:`CNNNet`: two 1-D convolutions over the window axis, then the last position and
  the mean over positions feed a linear head.
* :class:`MeanRisk`: an ensemble, the mean of its members' risks (it outputs risk, not a
  logit); :func:`risk_model` gives the risk-output module of either kind for export.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = [
    "ARCHITECTURES",
    "CNNNet",
    "GRUNet",
    "MeanRisk",
    "RiskHead",
    "build_network",
    "risk_model",
]

ARCHITECTURES = ("gru", "cnn")


class GRUNet(nn.Module):
    """GRU over the window sequence -> logit."""

    def __init__(self, n_features: int, hidden: int = 48, dropout: float = 0.1) -> None:
        super().__init__()
        self.gru = nn.GRU(n_features, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)
        self.rul_head = nn.Linear(hidden, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden state, ``[batch, hidden]``."""
        out, _ = self.gru(x)
        last: torch.Tensor = self.dropout(out[:, -1])
        return last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit: torch.Tensor = self.head(self.embed(x)).squeeze(-1)
        return logit


class CNNNet(nn.Module):
    """1-D CNN over the window axis -> logit."""

    def __init__(self, n_features: int, hidden: int = 48, dropout: float = 0.1) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(n_features, hidden, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, kernel_size=3, padding=1),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, 1)
        self.rul_head = nn.Linear(2 * hidden, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The last position and the mean over positions, ``[batch, 2 * hidden]``."""
        h = self.conv(x.transpose(1, 2))  # [batch, hidden, K]
        pooled: torch.Tensor = self.dropout(torch.cat([h[:, :, -1], h.mean(dim=2)], dim=1))
        return pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit: torch.Tensor = self.head(self.embed(x)).squeeze(-1)
        return logit


class RiskHead(nn.Module):
    """Wraps a logit network so it outputs ``sigmoid(logit)``, the exported risk."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


class MeanRisk(nn.Module):
    """An ensemble: the mean of its members' risks ``sigmoid(logit)``, ``[batch]`` in [0, 1].

    Risks are averaged, not logits, so one over-confident member moves the mean by at
    most ``1 / len(members)``.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        risks = torch.stack([torch.sigmoid(m(x)) for m in self.members])
        mean: torch.Tensor = risks.mean(dim=0)
        return mean


def risk_model(net: nn.Module) -> nn.Module:
    """The module that outputs risk: an ensemble as it is, a logit network wrapped."""
    return net if isinstance(net, MeanRisk) else RiskHead(net)


def build_network(arch: str, n_features: int, hidden: int = 48, dropout: float = 0.1) -> nn.Module:
    """A fresh network of architecture ``arch`` (``"gru"`` or ``"cnn"``)."""
    if arch == "gru":
        return GRUNet(n_features, hidden, dropout)
    if arch == "cnn":
        return CNNNet(n_features, hidden, dropout)
    raise ValueError(f"unknown architecture {arch!r}; choose from {ARCHITECTURES}")
