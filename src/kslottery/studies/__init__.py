"""Layer 9, studies: calibrate, regime map, shifts, sweeps, side profiles collected beside the
default's (`ksl collect`), run by hand through `ksl`. Imported by no stage, so editing a study never
reruns the pipeline."""
