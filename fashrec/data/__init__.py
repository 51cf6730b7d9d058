"""Images in: the one preprocessing function, the H&M loader, the on-disk tensor cache and the embedded
sample (``hm_sample/``)."""
