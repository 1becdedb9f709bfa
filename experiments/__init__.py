"""Paper experiments: one module per figure (which sweeps, which plot), `collect` (sweep directories -> one
tidy CSV), `plots` (bar plots and difference heatmaps) and `reproduce` (`python -m experiments.reproduce
figure2|figure3|figureS3|organ [--scale small|full]`). See docs/experiments.md."""
