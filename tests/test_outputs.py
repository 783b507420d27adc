"""One rule finds the logits in a model's output, for training, evaluation and proxies."""
import pytest
import torch

from symnas.outputs import logits


def test_logits_rule():
    feats, lg, aux = torch.randn(4, 32), torch.randn(4, 10), torch.randn(4, 10)
    assert logits(lg) is lg
    assert logits({"logits": lg}) is lg
    assert logits((feats, lg)) is lg                      # (features, logits)
    assert logits((lg, aux), num_classes=10) is lg        # (logits, aux_logits)
    assert logits((feats, lg), num_classes=10) is lg
    with pytest.raises(TypeError, match="logits"):
        logits("not an output")
