"""Layer 8, pipeline: what every stage script shares (params load and checks, logging, one-line errors,
the inputs stages read) and how stages are launched. Holds no method logic."""
