"""2D inference reads the CAM at each label pixel the way training reads it at a point's pixel."""

import numpy as np
import torch

from jointwsss.evaluate import predict_image


class _FixedCam(torch.nn.Module):
    """A stride-2 'network' whose CAM of any 4 x 4 image is one class with logits [[0, 2], [4, 6]]."""

    output_stride = 2

    def forward(self, images):
        assert images.shape == (1, 3, 4, 4)
        cam = torch.tensor([[[[0.0, 2.0], [4.0, 6.0]]]])
        return torch.zeros(1, 1, 2, 2), cam


def test_predict_image_reads_cells_at_their_receptive_field_centres():
    color = np.zeros((4, 4, 3), np.uint8)
    # Same resolution: cell (i, j) sits on pixel (2i, 2j); between centres bilinear, beyond them the border.
    # Logit at (row v, col u) = 4 * clamp(v / 2, 0, 1) + 2 * clamp(u / 2, 0, 1).
    logits = np.array([[4 * min(v / 2, 1) + 2 * min(u / 2, 1) for u in range(4)] for v in range(4)])
    got = predict_image(_FixedCam(), color, (4, 4), torch.device("cpu"))
    assert got.shape == (1, 4, 4)
    np.testing.assert_allclose(got[0], 1 / (1 + np.exp(-logits)), rtol=1e-6)
    # A 2 x 2 label image of the same frame: its pixel centres are input pixels 0.5 and 2.5, i.e. cells
    # 0.25 and 1.25 (clamped to 1).
    logits_half = np.array([[4 * r + 2 * c for c in (0.25, 1.0)] for r in (0.25, 1.0)])
    got_half = predict_image(_FixedCam(), color, (2, 2), torch.device("cpu"))
    np.testing.assert_allclose(got_half[0], 1 / (1 + np.exp(-logits_half)), rtol=1e-6)
