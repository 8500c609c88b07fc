"""Model layer: checkpoints, trial metadata, the manifest, and the frozen spec the worker runs on."""
