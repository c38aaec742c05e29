"""soundsim.head: the spec, the validation split, training (it learns, it is deterministic), the
checkpoint. Real torch training on small synthetic labelled sets; scores by soundsim's own metrics."""

from __future__ import annotations

import numpy as np
import pytest

from soundsim import head as HD
from soundsim import metrics as M
from soundsim.errors import ConfigError


def labelled_set(n_per_label: int, n_labels: int = 6, d: int = 32, seed: int = 0, signal: int = 4):
    """Each label's clips share a direction in the first ``signal`` dims, drowned by large
    noise in all ``d`` dims: similar only after a learned projection. One clip in five
    carries a second label (multi-label)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(1234).standard_normal((n_labels, signal))
    X, labels = [], []
    for lab in range(n_labels):
        for j in range(n_per_label):
            x = rng.standard_normal(d) * 1.5
            x[:signal] = rng.standard_normal(signal) * 0.5 + centres[lab] * 1.5
            ls = [f"L{lab}"]
            if j % 5 == 4:
                other = (lab + 1) % n_labels
                x[:signal] += centres[other]
                ls.append(f"L{other}")
            X.append(x)
            labels.append(ls)
    return np.asarray(X), labels


def map15(Z: np.ndarray, labels) -> float:
    Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    return M.metrics_from_scores(Z @ Z.T, M.build_label_index(labels), [15]).macro()["map@15"]


SMALL = {"dim": 16, "hidden": 64, "epochs": 40, "patience": 10, "batch_size": 32, "temperature": 0.3, "lr": 0.005}


def test_spec_from_config_and_its_errors():
    spec = HD.HeadSpec.from_config({"dim": 64, "lr": 1, "loss": "proxy-anchor"}, "heads.head-x")
    assert (spec.dim, spec.lr, spec.loss, spec.architecture) == (64, 1.0, "proxy-anchor", "mlp")
    assert HD.HeadSpec.from_config(None) == HD.HeadSpec()
    assert HD.HeadSpec(**spec.as_dict()) == spec
    cases = [
        ({"epoch": 3}, "heads.head-x: unknown key(s) 'epoch'; allowed keys: architecture, dim"),
        ({"loss": "triplet"}, "heads.head-x.loss: 'triplet' is not allowed; allowed values: supcon, proxy-anchor"),
        ({"architecture": "cnn"}, "heads.head-x.architecture: 'cnn' is not allowed; allowed values: linear, mlp"),
        ({"dim": 1}, "heads.head-x.dim: 1 is below 2"),
        ({"dim": 2.5}, "heads.head-x.dim: 2.5 is not an integer"),
        ({"val_fraction": 1.0}, "heads.head-x.val_fraction: 1.0 is not in (0, 1)"),
        ({"temperature": 0}, "heads.head-x.temperature: 0.0 is not > 0"),
        ({"seed": True}, "heads.head-x.seed: True is not an integer"),
    ]
    for cfg, msg in cases:
        with pytest.raises(ConfigError) as e:
            HD.HeadSpec.from_config(cfg, "heads.head-x")
        assert str(e.value).startswith(msg), (cfg, str(e.value))


def test_split_validation_is_seeded_and_stratified():
    labels = [["a"]] * 10 + [["b"]] * 4 + [["c"]] * 3 + [["b", "c"]] * 2
    tr, va = HD.split_validation(labels, 0.2, seed=0)
    assert np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(len(labels)))
    assert not set(tr) & set(va)
    tr2, va2 = HD.split_validation(labels, 0.2, seed=0)
    assert np.array_equal(va, va2)
    # primary label: the rarest; a: 10 clips -> 2 to validation; b: 4 + 0 (b,c clips' primary is c: 3+2 = 5 vs b 6)
    prim = HD.primary_labels(labels)
    assert prim[-1] == "c" and prim[10] == "b"
    per = {lab: sum(prim[i] == lab for i in va) for lab in "abc"}
    assert per == {"a": 2, "b": 2, "c": 2}
    assert any(not np.array_equal(HD.split_validation(labels, 0.2, seed=s)[1], va) for s in range(1, 6))


def test_the_head_learns_similarity_on_new_clips():
    X, labels = labelled_set(20, seed=0)
    Xn, ln = labelled_set(10, seed=99)  # new clips of the same labels
    head = HD.train_head(X, labels, HD.HeadSpec(**SMALL))
    Z = head.apply(Xn)
    assert Z.shape == (len(Xn), 16) and Z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, atol=1e-5)
    raw, learned = map15(Xn, ln), map15(Z.astype(np.float64), ln)
    assert learned > raw + 0.15, (raw, learned)
    h = head.history
    assert list(h.columns) == HD.HISTORY_COLUMNS and h["best"].sum() == 1
    assert int(h.loc[h["best"], "epoch"].iloc[0]) == head.best_epoch == int(h.loc[h["val_map@15"].idxmax(), "epoch"])
    assert head.n_train + head.n_val == len(X) and head.labels == [f"L{i}" for i in range(6)]


def test_proxy_anchor_and_linear_learn_too():
    X, labels = labelled_set(20, seed=1)
    Xn, ln = labelled_set(10, seed=98)
    for spec in (HD.HeadSpec(**{**SMALL, "loss": "proxy-anchor"}), HD.HeadSpec(**{**SMALL, "architecture": "linear"})):
        head = HD.train_head(X, labels, spec)
        assert map15(head.apply(Xn).astype(np.float64), ln) > map15(Xn, ln) + 0.1, spec


def test_one_seed_one_head_bit_for_bit_another_seed_another():
    import torch

    X, labels = labelled_set(12, seed=2)
    spec = HD.HeadSpec(**{**SMALL, "epochs": 6, "dropout": 0.2})
    before = torch.random.get_rng_state().clone()
    threads = torch.get_num_threads()
    a, b = HD.train_head(X, labels, spec), HD.train_head(X, labels, spec)
    assert sorted(a.state) == sorted(b.state)
    for k in a.state:
        assert a.state[k].tobytes() == b.state[k].tobytes(), k
    assert a.fingerprint == b.fingerprint and a.fingerprint.startswith("sha256:")
    assert a.history["val_map@15"].tolist() == b.history["val_map@15"].tolist()
    c = HD.train_head(X, labels, HD.HeadSpec(**{**SMALL, "epochs": 6, "dropout": 0.2, "seed": 1}))
    assert c.fingerprint != a.fingerprint
    assert any(c.state[k].tobytes() != a.state[k].tobytes() for k in a.state)
    # no global state left changed
    assert torch.equal(torch.random.get_rng_state(), before) and torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()


def test_checkpoint_roundtrip_and_bad_files(tmp_path):
    X, labels = labelled_set(10, seed=3)
    head = HD.train_head(X, labels, HD.HeadSpec(**{**SMALL, "epochs": 3}))
    path = head.save(tmp_path / "h" / "head.pt")
    back = HD.TrainedHead.load(path)
    assert back.fingerprint == head.fingerprint and back.best_epoch == head.best_epoch
    assert back.history.equals(head.history) or back.history.astype(str).equals(head.history.astype(str))
    np.testing.assert_array_equal(back.apply(X), head.apply(X))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:200])
    with pytest.raises(HD.HeadError, match=f"{corrupt}: not a readable head checkpoint"):
        HD.TrainedHead.load(corrupt)
    with pytest.raises(HD.HeadError, match="head checkpoint not found"):
        HD.TrainedHead.load(tmp_path / "missing.pt")
    with pytest.raises(HD.HeadError, match=r"takes \(n, 32\) vectors"):
        head.apply(X[:, :5])


def test_bad_training_input_is_refused():
    X, labels = labelled_set(6, seed=4)
    with pytest.raises(HD.HeadError, match="no clips to train on"):
        HD.train_head(X[:0], [], HD.HeadSpec())
    with pytest.raises(HD.HeadError, match="30 label lists"):
        HD.train_head(X[:31], labels[:30], HD.HeadSpec())
    Xbad = X.copy()
    Xbad[3, 0] = np.nan
    with pytest.raises(HD.HeadError, match="1 clip vector\\(s\\) with NaN or inf: c3"):
        HD.train_head(Xbad, labels, HD.HeadSpec(), fnames=[f"c{i}" for i in range(len(X))])
    with pytest.raises(HD.HeadError, match="fewer than 2 labels with >= 2 clips"):
        HD.train_head(X[:3], [["a"], ["b"], ["c"]], HD.HeadSpec())
    with pytest.raises(HD.HeadError, match="too few clips for a validation split"):
        HD.train_head(X[:6], [["a"], ["a"], ["a"], ["b"], ["b"], ["b"]], HD.HeadSpec())
