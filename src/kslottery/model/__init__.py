"""Layer 3, model: base models (GGUF in a wheel, hub id, local directory), untying, device and dtype;
surgery (which parameters train, one function per kind of method); saving and loading by saved form;
model cards. Runs no training loop."""
