"""What the baselines refuse (egmf.model.baselines.inputs checks dims and datasets, the heads check labels)."""

from __future__ import annotations

import numpy as np
import pytest

from egmf.data.collate import collate
from egmf.errors import ConfigError, DataFormatError

from .conftest import MSA, build, make_samples


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny tensors, one thread


def test_bad_inputs_get_exact_errors():
    model, infos = build("mult", "erc")
    samples = make_samples(infos.values(), n_per=1)
    bad = make_samples(infos.values(), n_per=1)[0]
    bad.label = "happy"
    with pytest.raises(DataFormatError, match=r"dataset erc_a: label of sample 'erc_a-0': expected one of "
                       r"\['neutral', 'joy', 'anger'\], got happy"):
        model(collate([bad]))
    wrong_dim = make_samples(infos.values(), n_per=1)[0]
    wrong_dim.audio = np.zeros((3, 9), np.float32)
    with pytest.raises(DataFormatError, match=r"audio features of sample 'erc_a-0': expected dim 6 .*got 9"):
        model(collate([wrong_dim]))
    stranger = make_samples([MSA], n_per=1)[0]
    with pytest.raises(ConfigError, match=r"dataset 'msa.b' is not one this model was built for; valid choices: erc_a"):
        model(collate(samples + [stranger]))
