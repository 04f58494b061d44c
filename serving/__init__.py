"""Serving stage: pconv models on NVIDIA Triton Inference Server.

* ``pconv triton-repo MODEL -o DIR``: a model repository (:mod:`pconv.serving.repository`);
* ``pconv serve MODEL``: a real ``tritonserver`` on this machine (:mod:`pconv.serving.server`);
* clients: ``Inpainter("grpc://host:8001/pconv")`` (:mod:`pconv.runtime.triton_backend`).

Imports the torch-free core and :mod:`pconv.runtime` only.
"""
