"""The models: the Hub base class every model shares, the paper's autoencoder and VAE, the label-trained
CNN, how new weights are drawn, and the checkpoints shipped in the package."""
