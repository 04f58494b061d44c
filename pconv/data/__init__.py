"""Data every stage shares, torch-free: hole masks (:mod:`.masks`) and images (:mod:`.images`)."""
