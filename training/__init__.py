"""Stage 1, PyTorch: the partial-convolution layer, the paper's U-Net, losses, data, training.

Import what you need from its module (``pconv.training.unet.PConvUNet``,
``pconv.training.checkpoint.load_checkpoint``, ...): importing this package imports nothing, so
``pconv --help`` and the options of ``pconv train`` (:mod:`.options`) need no torch.
"""
