"""Lipschitz complexity, codebook analysis and the feature extractors (tiny, random weights)."""

from __future__ import annotations

import pytest
import torch

from dae.metrics.codebook import (
    code_usage,
    codebook_report,
    cosine_distance_eigenvalues,
    cosine_similarity_histogram,
    pairwise_cosine,
)
from dae.metrics.lipschitz import encoder_decoder_lipschitz, lipschitz_ratio


def test_lipschitz_of_linear_maps():
    x = torch.randn(64, 6, generator=torch.Generator().manual_seed(0))
    # A scaled isometry has slope exactly its scale, under both pairings.
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(1)))
    for pairing in ("perturb", "shuffle"):
        assert lipschitz_ratio(lambda v: 3.0 * v @ q, x, pairing) == pytest.approx(3.0, rel=1e-5)
    # A general linear map's mean slope lies between its smallest and largest singular values.
    a = torch.randn(6, 4, generator=torch.Generator().manual_seed(2))
    s = torch.linalg.svdvals(a)
    r = lipschitz_ratio(lambda v: v @ a, x)
    assert float(s[-1]) <= r <= float(s[0])
    # Perceptual variant: with phi = 2x on the outputs, the slope doubles.
    assert lipschitz_ratio(lambda v: v, x, phi_out=lambda v: 2 * v) == pytest.approx(2.0, rel=1e-6)


def test_lipschitz_of_toy_vae():
    from dae.autoencoder.toy_vae import ToyVAE, ToyVAEConfig

    torch.manual_seed(0)
    model = ToyVAE(ToyVAEConfig()).eval()
    out = encoder_decoder_lipschitz(model, torch.randn(128, 10), phi=lambda v: v.flatten(1))
    assert set(out) == {
        "lipschitz/encoder",
        "lipschitz/decoder",
        "lipschitz/encoder_perceptual",
        "lipschitz/decoder_perceptual",
    }
    assert all(v > 0 for v in out.values())
    assert out["lipschitz/encoder"] == pytest.approx(out["lipschitz/encoder_perceptual"])


def test_codebook_orthogonal_and_collapsed():
    k = 8
    ortho = torch.eye(k)
    hist = cosine_similarity_histogram(ortho, bins=4)
    assert sum(hist["counts"]) == k * (k - 1) / 2 and hist["mean_abs"] == pytest.approx(0.0)
    # Orthogonal codes: distance matrix J - I, eigenvalues k-1 and -1 (k-1 times): a flat decay.
    eig = cosine_distance_eigenvalues(ortho)
    assert eig[0] == pytest.approx(1.0) and torch.allclose(
        eig[1:].abs(), torch.full((k - 1,), 1 / (k - 1), dtype=torch.float64), atol=1e-9
    )
    # Collapsed codes (all parallel): distance matrix 0 -> all-zero eigenvalues after the first.
    collapsed = torch.ones(k, 3) * torch.arange(1, k + 1)[:, None]
    assert cosine_similarity_histogram(collapsed)["mean"] == pytest.approx(1.0)


def test_codebook_statistics_of_a_large_book_equal_the_whole_matrix():
    # more codes than dimensions + 1: the eigenvalues come from the rank-(D + 1) route, the
    # histogram from blocks of rows; both must equal the K x K matrix's (a zero code, and a code
    # parallel to another, included)
    torch.manual_seed(0)
    codes = torch.randn(300, 8)
    codes[5] = 0.0
    codes[7] = 3.0 * codes[9]
    distance = 1.0 - pairwise_cosine(codes)
    want = torch.linalg.eigvalsh(distance)
    got = cosine_distance_eigenvalues(codes) * want.abs().max()
    assert torch.allclose(got.sort().values, want.sort().values, atol=1e-9)
    assert (got.abs() > 1e-9).sum() == 9  # rank D + 1
    upper = torch.triu_indices(300, 300, offset=1)
    values = pairwise_cosine(codes)[upper[0], upper[1]]
    hist = cosine_similarity_histogram(codes, bins=20, rows=7)
    assert hist["counts"] == torch.histc(values, bins=20, min=-1.0, max=1.0).tolist()
    assert hist["mean"] == pytest.approx(float(values.mean()), abs=1e-12)
    assert hist["mean_abs"] == pytest.approx(float(values.abs().mean()), abs=1e-12)


def test_code_usage():
    uniform = code_usage(torch.arange(64) % 16, 16)
    assert uniform["perplexity"] == pytest.approx(16.0) and uniform["dead_codes"] == 0
    one = code_usage(torch.full((5, 4, 4), 3), 16)
    assert one["perplexity"] == pytest.approx(1.0) and one["dead_codes"] == 15
    assert one["counts_sorted"][:2] == [80, 0]
    report = codebook_report(torch.randn(16, 4), torch.arange(32) % 8)
    assert report["usage"]["dead_codes"] == 8 and len(report["eigenvalues"]) == 16


def test_inception_loads_checked_state_dict(tmp_path, monkeypatch):
    from dae.metrics.inception import FIDInceptionV3, load_inception, sha256_file

    torch.manual_seed(0)
    net = FIDInceptionV3()
    path = tmp_path / "pt_inception-random.pth"
    torch.save(net.state_dict(), path)
    digest = sha256_file(path)
    loaded = load_inception(path, sha256=digest)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in loaded.state_dict().items())
    feats = loaded.features(torch.rand(1, 3, 32, 32) * 2 - 1)  # resized to 299 inside
    assert feats["pool"].shape == (1, 2048) and feats["spatial"].shape == (1, 2023)
    assert feats["logits"].shape == (1, 1008)
    with pytest.raises(ValueError, match="SHA-256"):
        load_inception(path, sha256="0" * 64)
    # Through the registry: the default hash check refuses random weights; an override accepts them,
    # and only this network's numbers are named FID.
    from dae.metrics.features import build_features

    with pytest.raises(ValueError, match="pt_inception-random.pth: SHA-256"):
        build_features(f"inception:{path}")
    monkeypatch.setenv("DAE_INCEPTION_SHA256", digest[:12])
    assert build_features(f"inception:{path}").names["fd"] == "FID"
    torch.save({"fc.weight": torch.zeros(1008, 2048)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not the FID Inception layout"):
        load_inception(tmp_path / "bad.pth", sha256=None)


def test_tf1_resize_matches_definition():
    from dae.metrics.inception import resize_like_tf1

    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    up = resize_like_tf1(x, 8)
    # Source coordinate = dst * 4/8: dst 1 -> 0.5 (halfway between 0 and 1), last rows clamp.
    assert up[0, 0, 0, :4].tolist() == [0.0, 0.5, 1.0, 1.5] and up[0, 0, 0, -1] == 3.0
    assert torch.equal(resize_like_tf1(x, 4), x)


def test_tiny_classifier_features(tmp_path, monkeypatch):
    from dae.metrics.classifier import ClassifierConfig, classifier_path
    from dae.metrics.features import build_features, reference_features

    monkeypatch.setenv("DAE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    for prefix in ("train", "t10k"):  # 64 random 28x28 "digits" in the idx format
        images = torch.randint(0, 256, (64, 28, 28), generator=gen, dtype=torch.uint8)
        labels = torch.randint(0, 10, (64,), generator=gen, dtype=torch.uint8)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            header = bytes([0, 0, 8, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
            (folder / f"{prefix}-{kind}-ubyte").write_bytes(header + arr.numpy().tobytes())
    cfg = ClassifierConfig(dataset="mnist", width=4, epochs=1, batch_size=32)
    ext = build_features("classifier:mnist", root=tmp_path / "data", cfg=cfg)
    assert classifier_path(cfg).is_file() and 0.0 <= ext.info["test_accuracy"] <= 1.0
    assert ext.names["fd"] == "FD-classifier:mnist"  # never called FID
    images = torch.randint(
        0, 256, (10, 3, 32, 32), dtype=torch.uint8
    )  # colour, other size: adapted
    feats = ext.extract(images, batch_size=4)
    assert feats["pool"].shape == (10, 16) and feats["logits"].shape == (10, 10)
    again = build_features(
        "classifier:mnist", root=tmp_path / "data", cfg=cfg, train_if_missing=False
    )
    assert torch.allclose(again.extract(images)["pool"], feats["pool"], atol=1e-5)
    cached = reference_features(ext, images, "t")
    assert torch.allclose(reference_features(ext, images, "t")["pool"], cached["pool"])
    with pytest.raises(FileNotFoundError, match="no trained classifier"):
        build_features("classifier:mnist:seed=5,width=8", train_if_missing=False)


def test_classifier_key_is_stable():
    from dae.config import replace
    from dae.metrics.classifier import ClassifierConfig

    cfg = ClassifierConfig(epochs=2)
    assert replace(cfg, []).key() == cfg.key()  # 2 and 2.0 name the same network
    assert replace(cfg, ["threads=4"]).key() == cfg.key()  # threads do not change the weights
    assert replace(cfg, ["epochs=3"]).key() != cfg.key()


@pytest.mark.parametrize("omp", [None, "1"])
def test_classifier_threads_yield_to_omp_num_threads_and_are_restored(monkeypatch, omp):
    """The CIFAR-10 preset trains with 2 threads, but a job given OMP_NUM_THREADS=1 (two jobs on
    two cores) keeps its one; either way the caller's thread count comes back afterwards."""
    import dae.metrics.classifier as classifier

    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    seen = []
    monkeypatch.setattr(
        classifier, "_train_classifier", lambda *a: seen.append(torch.get_num_threads())
    )
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        classifier.train_classifier(classifier.ClassifierConfig(threads=2))
        assert seen == [3 if omp else 2] and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
