"""Layer 5, lottery: the paper. The two-sample KS test and its kernels, ticket selection, KS beyond the
embedding, certification. Pure computations on arrays and models handed in: never imports model/ or
training/, never opens a file."""
