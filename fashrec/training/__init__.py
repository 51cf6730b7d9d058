"""Training: the resumable loops, the resume checkpoint and the training pictures."""
