"""Layer 4, training: the one loop (accelerate), checkpoints and resume, cost records. Never
branches on a method's name: a method is only its surgery, done before the loop."""
