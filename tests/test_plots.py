"""The PNG figures of results/: drawn from the metrics files' formats, nothing drawn without data."""

import json

from matplotlib.image import imread

from kslottery.report.figures import plot_ks_histogram, plot_losses, read_losses


def write_losses(train_dir, pair, seed, method, losses):
    path = train_dir / pair / f"s{seed}" / f"{method}.loss.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("step,loss\n" + "".join(f"{i},{v}\n" for i, v in enumerate(losses)))


def test_loss_curves_average_seeds_and_skip_removed_ones(tmp_path):
    train = tmp_path / "train"
    write_losses(train, "en-ca", 0, "embed", [4.0, 3.0, 2.0])
    write_losses(train, "en-ca", 1, "embed", [6.0, 5.0, 4.0])
    write_losses(train, "en-ca", 7, "embed", [9.0, 9.0, 9.0])  # a seed no longer in params
    write_losses(train, "en-ca", 0, "ticket", [4.0, 3.5, 3.0])
    curves = read_losses(train, {"en-ca"}, {0, 1})
    assert sorted(curves["en-ca"]) == ["embed", "ticket"]
    assert curves["en-ca"]["embed"].mean(axis=1).tolist() == [5.0, 4.0, 3.0]
    out = tmp_path / "loss.png"
    assert plot_losses(train, ["en-ca"], [0, 1], out)
    height, width, _ = imread(out).shape
    assert width > 600 and height > 400
    assert not plot_losses(train, ["en-de"], [0], tmp_path / "none.png") and not (tmp_path / "none.png").exists()


def test_ks_histogram_needs_the_stage_outputs(tmp_path):
    ks = tmp_path / "ks" / "en-ca"
    ks.mkdir(parents=True)
    (ks / "s0.hist.csv").write_text("D,rows,tickets\n0.010000,500,0\n0.050000,40,0\n0.090000,12,12\n")
    (ks / "s0.json").write_text(json.dumps({"alpha": 0.05, "n_tickets": 12, "n_moved": 552, "vocab_size": 1000,
                                            "critical_D": 0.09}))
    out = tmp_path / "hist.png"
    assert plot_ks_histogram(tmp_path / "ks", ["en-ca"], [0], out)
    assert imread(out).shape[1] > 600
    assert not plot_ks_histogram(tmp_path / "ks", ["en-ca"], [3], tmp_path / "none.png")
