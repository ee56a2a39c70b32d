"""Layer 9, studies: calibrate, regime map, shifts, sweeps, run by hand through `ksl`. Imported by no
stage, so editing a study never reruns the pipeline."""
