"""jointwsss: joint 2D-3D weakly supervised semantic segmentation (Kweon & Yoon, NeurIPS 2022).

Layering: ``io`` knows file formats, ``geometry`` knows cameras, ``synth`` writes the synthetic
datasets through ``io``, ``cli`` only wires.
"""

__version__ = "0.1.0"
