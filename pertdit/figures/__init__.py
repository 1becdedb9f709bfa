"""Plots that reproduce the paper's figures from metric tables and predictions (PNG and PDF).

- `pertdit.figures.deg`: the DEG case study (figure 4A): per-method box plot of per-drug DEG PCCs, and a
  drug x gene heatmap of true vs predicted lnFC.
"""
