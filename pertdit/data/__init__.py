"""L1000 data: readers, preprocessing, control pairing, splits and the Lightning data module."""
