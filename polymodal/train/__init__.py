"""Training on the user's own data: fusion classifiers (early / late / hybrid) and LiT-style aligners.

Every model here sits on frozen encoders reached through :class:`polymodal.analysis.Analyzer`; only small
heads are trained, in PyTorch on the CPU (the ``train`` extra). Datasets come from CSV or JSONL manifests
(:mod:`polymodal.train.manifest`), features are computed once and cached (:mod:`polymodal.train.features`).
Nothing is imported here: ``import polymodal.train`` stays free of torch.
"""
