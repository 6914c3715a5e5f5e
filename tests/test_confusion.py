"""The confusion matrix counted by hand, its largest entries, and the images behind one."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from cnnlib.lessons.confusion import confusion_matrix, most_confused, show_mistakes  # noqa: E402
from cnnlib.training.loop import evaluate  # noqa: E402

NAMES = ["zero", "one", "two"]
PREDICTED = [torch.tensor([0, 1, 2, 2]), torch.tensor([1, 1, 0])]
TRUE = [torch.tensor([0, 1, 1, 2]), torch.tensor([1, 0, 0])]


def one_hot_model() -> nn.Module:
    """logits = the flattened image: each input is a 1x3 image, the one-hot of the prediction."""
    linear = nn.Linear(3, 3)
    with torch.no_grad():
        linear.weight.copy_(torch.eye(3))
        linear.bias.zero_()
    return nn.Sequential(nn.Flatten(), linear)


LOADER = [(nn.functional.one_hot(p, 3).float().view(-1, 1, 1, 3), y) for p, y in zip(PREDICTED, TRUE)]


def test_confusion_matrix_counts_by_hand():
    model = one_hot_model().train()
    counts = confusion_matrix(model, LOADER, num_classes=3)
    assert counts.dtype == torch.int64 and counts.device.type == "cpu"
    assert counts.tolist() == [[2, 1, 0], [0, 2, 1], [0, 0, 1]]  # rows: true, columns: predicted
    assert model.training  # its mode is given back
    assert confusion_matrix(nn.Flatten(), LOADER, 3).tolist() == counts.tolist()  # a model with no parameters
    assert counts.diagonal().sum() / counts.sum() == evaluate(model, LOADER)  # the loop of evaluate


def test_most_confused_reads_the_off_diagonal():
    counts = torch.tensor([[9, 1, 4], [0, 7, 2], [3, 0, 8]])
    assert most_confused(counts, k=3) == [(0, 2, 4), (2, 0, 3), (1, 2, 2)]
    assert len(most_confused(counts, k=100)) == 6  # never the diagonal


def test_show_mistakes_shows_the_confused_images():
    fig = show_mistakes(one_hot_model(), LOADER, NAMES, true=0, predicted=1)
    assert [ax.get_title() for ax in fig.axes] == ["one\n(true: zero)"]
    image = fig.axes[0].images[0].get_array()
    assert image.tolist() == [[0.0, 1.0, 0.0]]  # the fifth example, the only "zero" taken for a "one"
    with pytest.raises(ValueError, match="no image of class 'two' is predicted as 'zero'"):
        show_mistakes(one_hot_model(), LOADER, NAMES, true=2, predicted=0)
